"""Training, evaluation and benchmarks (data set adapters arrive with the model work)."""
