"""The shared runtime of producers and workers: settings, errors, logging, metrics, tracing,
the Celery app configuration, the wire format (admission, signing, headers) and the database.

It imports ``schemas`` and ``machines`` only: nothing here knows a worker process, a producer
or training.
"""
