"""Training, evaluation, packaging and benchmarks of the diagnosis model.

Modules: :mod:`training.data.demo` (labelled windows from demo machines or run files),
:mod:`training.objective` (the loss), :mod:`training.data.augment` (batch augmentations),
:mod:`training.fit` (the one training loop, used by every trainer and benchmark, and the
product's trainer) with :mod:`training.batches` (the batches of an epoch),
:mod:`training.residual_scale` (anomaly-score calibration), :mod:`training.metrics` (metric
functions, computed by scikit-learn), :mod:`training.evaluate`
(metrics of a model on windows), :mod:`training.pipeline` (data plans, fit and package),
:mod:`training.build_models` (the bundled model) with :mod:`training.model_card`,
:mod:`training.universality` (generalisation to an unseen machine), the benchmarks, and
the commands in :mod:`cli.train` and :mod:`cli.build`. Importing this package
imports none of them.
"""
