"""Fetch snapshot messages from Redis so that none is ever only in flight.

kombu's Redis transport takes a message with BRPOP and records it as delivered (its
"unacked" hash and index) in a second round trip after the reply is read. Between the two the
message is in nobody's books: a BRPOP left waiting while the worker computes a batch pops a
message into the socket, and a worker killed then loses it for good (the reliability suite
saw this: 1 of 3,200 snapshots lost to a SIGKILL). :class:`AtomicFetcher` moves up to N
messages from the queue into kombu's unacked hash and index in one Lua script, so that a
message is always either in the queue or recorded as delivered, in kombu's own format:
acks, rejects, requeues on close and the visibility-timeout restore all work unchanged. It
is also one round trip per fetch instead of two per message, and :func:`acknowledge`
settles a whole batch in one round trip the same way.

Waiting for an empty queue is a short sleep between fetches (no blocking pop at all).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from loguru import logger

#: kombu's Redis priority queues: the queue itself (priority 0), then these suffixes.
_PRIORITY_STEPS = (3, 6, 9)
_PRIORITY_SEPARATOR = "\x06\x16"

_FETCH = """
local limit = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local out = {}
for k = 3, #KEYS do
  while #out < limit do
    local item = redis.call('RPOP', KEYS[k])
    if not item then break end
    local ok, message = pcall(cjson.decode, item)
    local properties = ok and type(message) == 'table' and message['properties']
    local tag = type(properties) == 'table' and properties['delivery_tag']
    if type(tag) == 'string' then
      local info = properties['delivery_info']
      local exchange, routing_key = '', ''
      if type(info) == 'table' then
        exchange = info['exchange'] or ''
        routing_key = info['routing_key'] or ''
      end
      redis.call('ZADD', KEYS[2], now, tag)
      redis.call('HSET', KEYS[1], tag,
        '[' .. item .. ',' .. cjson.encode(exchange) .. ',' .. cjson.encode(routing_key) .. ']')
    end
    out[#out + 1] = item
  end
end
return out
"""


class AtomicFetcher:
    """Takes messages from one queue of a kombu Redis channel, recorded as delivered atomically.

    Args:
        queue: The queue name (its priority sub-queues are read after it, as kombu does).
    """

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self._keys = [queue, *(f"{queue}{_PRIORITY_SEPARATOR}{step}" for step in _PRIORITY_STEPS)]
        self._script: Any = None  # registered once; each call names the client it runs on

    def __repr__(self) -> str:
        return f"AtomicFetcher(queue={self.queue!r})"

    def fetch(self, channel: Any, limit: int) -> list[Any]:
        """Up to ``limit`` kombu messages, each already in the channel's unacked books.

        An item that is not a kombu envelope (no delivery tag; only something other than a
        kombu producer pushes those) is logged and dropped: it cannot be requeued.
        """
        if limit <= 0:
            return []
        qos = channel.qos
        with channel.conn_or_acquire() as client:
            if self._script is None:
                self._script = client.register_script(_FETCH)
            items = self._script(
                keys=[qos.unacked_key, qos.unacked_index_key, *self._keys],
                args=[limit, time.time()],
                client=client,
            )
        messages = []
        for item in items:
            try:
                payload = loads(bytes_to_str(item))
                message = channel.Message(payload, channel=channel)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                # Not a kombu envelope (pushed by something other than a kombu producer):
                # it was never recorded as delivered and cannot be requeued.
                logger.error(
                    "unreadable message envelope dropped",
                    queue=self.queue,
                    error=f"{type(exc).__name__}: {exc}",
                    size_bytes=len(item),
                )
                continue
            # The script did the Redis half of QoS.append; this is the in-process half.
            virtual.QoS.append(qos, message, message.delivery_tag)
            messages.append(message)
        return messages


def acknowledge(messages: Sequence[Any]) -> None:
    """Acknowledge kombu Redis messages: one round trip per channel instead of one per message.

    The Redis half of kombu's ``QoS.ack`` (removing the delivery tags from the unacked hash
    and index) for all messages in one pipeline, then the in-process half for each. A
    message already settled is skipped. On a connection error nothing is marked acknowledged
    in process; what Redis applied stays applied, and what it did not is restored after the
    visibility timeout like any unacked message.
    """
    by_channel: dict[int, tuple[Any, list[Any]]] = {}
    for message in messages:
        if not message.acknowledged:
            by_channel.setdefault(id(message.channel), (message.channel, []))[1].append(message)
    for channel, pending in by_channel.values():
        qos = channel.qos
        tags = [message.delivery_tag for message in pending]
        with channel.conn_or_acquire() as client:
            client.pipeline().zrem(qos.unacked_index_key, *tags).hdel(
                qos.unacked_key, *tags
            ).execute()
        for message in pending:
            virtual.QoS.ack(qos, message.delivery_tag)
            message._state = "ACK"  # what Message.ack sets after basic_ack
