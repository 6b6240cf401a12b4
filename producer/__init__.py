"""Producer side of gnn-service: demo machines and data generation (``machines``)."""
