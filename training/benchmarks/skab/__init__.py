"""The skab benchmark: data-set adapter, protocol run and report."""
