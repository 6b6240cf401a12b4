"""Names on the wire that producers and workers share (docs/messages.md): the task names and
the message headers our producers set."""

from __future__ import annotations

#: The snapshot task: one argument, the Snapshot as JSON; task id = snapshot id.
TASK_DIAGNOSE = "gnn.diagnose"
#: The wiring check on the control queue (``gnn-service ping``).
TASK_PING = "gnn.ping"
#: Message header carrying the producer's correlation id to the worker.
CORRELATION_HEADER = "gnn_correlation_id"
#: Header set by our producers: publish time, seconds since the epoch (queue latency).
PUBLISHED_AT_HEADER = "gnn_published_at"
