"""The benchmarks, one subpackage or module each.

Real data sets (``skab``, ``hydraulic``, ``cmapss``): each subpackage holds the adapter that
reads the data set in its published format (../shared/data/README.md) and describes the machine
as a :class:`~schemas.spec.SystemSpec` (``dataset``), the run under the data set's own
evaluation protocol (``run``) and its report. Serving: ``forward`` (the model alone),
``pipeline`` (queue to database, worker processes), ``db_write`` (the storage path).
"""
