"""``python -m cli`` runs the gnn-service CLI."""

from cli.main import main

main()
