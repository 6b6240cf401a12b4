"""``python -m worker`` runs the gnn-service CLI."""

from worker.cli import main

main()
