"""The gnn-service worker: Celery app, batching, model runner, storage, observability."""
