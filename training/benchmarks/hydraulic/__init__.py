"""The hydraulic benchmark: data-set adapter, protocol run and report."""
