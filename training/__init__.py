"""Training, evaluation, packaging and benchmarks of the diagnosis model.

Modules: :mod:`training.demo_data` (labelled windows from demo machines or run files),
:mod:`training.train` (the training loop), :mod:`training.metrics` (pure metric functions),
:mod:`training.evaluate` (metrics of a model on windows), :mod:`training.build_models`
(the bundled model and its model card), :mod:`training.universality` (generalisation to an
unseen machine), :mod:`training.bench_forward` (forward-pass latency) and
:mod:`training.cli` (the ``train``, ``evaluate`` and ``models`` commands). Importing this
package imports none of them.
"""
