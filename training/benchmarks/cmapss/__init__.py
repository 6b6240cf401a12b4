"""The cmapss benchmark: data-set adapter, protocol run and report."""
