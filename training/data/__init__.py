"""Training data: the demo machines' labelled windows and the augmentations."""
