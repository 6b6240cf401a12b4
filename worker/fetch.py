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

#: kombu's Redis priority queues: the queue itself (priority 0), then these suffixes.
_PRIORITY_STEPS = (3, 6, 9)
_PRIORITY_SEPARATOR = "\x06\x16"

_FETCH = """
local limit = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local queue = ARGV[3]
local out = {}
for k = 3, #KEYS do
  while #out < limit do
    local item = redis.call('RPOP', KEYS[k])
    if not item then break end
    local ok, message = pcall(cjson.decode, item)
    local recordable = false
    local tag = nil
    -- Recorded as delivered only when kombu can restore it later: a string tag and body,
    -- headers and delivery_info objects (kombu marks redeliveries inside both).
    if ok and type(message) == 'table' and type(message['properties']) == 'table' then
      local properties = message['properties']
      local headers, info = message['headers'], properties['delivery_info']
      tag = properties['delivery_tag']
      recordable = type(tag) == 'string' and type(message['body']) == 'string'
        and type(headers) == 'table' and headers[1] == nil
        and type(info) == 'table' and info[1] == nil
    end
    if recordable then
      redis.call('ZADD', KEYS[2], now, tag)
      redis.call('HSET', KEYS[1], tag, '[' .. item .. ',"",' .. cjson.encode(queue) .. ']')
      out[#out + 1] = {tag, item}
    else
      out[#out + 1] = {false, item}
    end
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
        """Up to ``limit`` messages, each kombu one already in the channel's unacked books.

        An item kombu could not restore (not a kombu envelope, or one whose headers or
        delivery info are not objects) is not recorded as delivered; an item kombu cannot
        read (a body that is not base64, say) is. Either comes back as an
        :class:`UnreadableMessage`, so that the batch dead-letters it and settles it like
        any other message: none is dropped, and none comes back for ever.
        """
        if limit <= 0:
            return []
        qos = channel.qos
        with channel.conn_or_acquire() as client:
            if self._script is None:
                self._script = client.register_script(_FETCH)
            items = self._script(
                keys=[qos.unacked_key, qos.unacked_index_key, *self._keys],
                args=[limit, time.time(), self.queue],
                client=client,
            )
        messages = []
        for recorded, item in items:
            raw = bytes(item)
            tag = bytes_to_str(recorded) if recorded else None
            if tag is None:
                message: Any = UnreadableMessage(
                    raw,
                    channel=channel,
                    queue=self.queue,
                    delivery_tag=None,
                    unreadable="not a kombu envelope kombu could requeue (a JSON object with "
                    "string body, headers and properties.delivery_info objects and a string "
                    "properties.delivery_tag)",
                )
            else:
                try:
                    message = channel.Message(loads(bytes_to_str(raw)), channel=channel)
                except Exception as exc:  # kombu could not read the envelope
                    message = UnreadableMessage(
                        raw,
                        channel=channel,
                        queue=self.queue,
                        delivery_tag=tag,
                        unreadable=f"kombu could not read it ({type(exc).__name__}: {exc})",
                    )
                # The script did the Redis half of QoS.append; this is the in-process half.
                virtual.QoS.append(qos, message, tag)
            messages.append(message)
        return messages


class UnreadableMessage:
    """Stands where a kombu message would for a queue item kombu cannot read.

    Settled like a kombu message: ``ack`` forgets it, ``reject(requeue=True)`` puts it back
    at the head of its queue (through kombu's unacked records when it is in them, else by
    pushing its bytes back).

    Args:
        raw: The item's bytes as they were in the queue.
        channel: The kombu channel it was fetched on.
        queue: The queue it came from.
        delivery_tag: Its tag in kombu's unacked records, or None when it is not in them.
        unreadable: What is wrong with it, for the dead letter.
    """

    content_type = None

    def __init__(
        self,
        raw: bytes,
        *,
        channel: Any,
        queue: str,
        delivery_tag: str | None,
        unreadable: str,
    ) -> None:
        self.body = raw
        self.headers = _headers_of(raw)
        self.delivery_info: dict[str, Any] = {}
        self.channel = channel
        self.queue = queue
        self.delivery_tag = delivery_tag
        self.unreadable = unreadable
        self._state = "RECEIVED"

    def __repr__(self) -> str:
        return f"UnreadableMessage(queue={self.queue!r}, size={len(self.body)})"

    @property
    def acknowledged(self) -> bool:
        """Whether it was acked or rejected already."""
        return self._state != "RECEIVED"

    def ack(self) -> None:
        """Forget it: it has its outcome."""
        if self.delivery_tag is not None:
            self.channel.qos.ack(self.delivery_tag)
        self._state = "ACK"

    def reject(self, requeue: bool = False) -> None:
        """Put it back at the head of its queue (``requeue``), or forget it."""
        if self.delivery_tag is not None:
            self.channel.qos.reject(self.delivery_tag, requeue=requeue)
        elif requeue:
            with self.channel.conn_or_acquire() as client:
                client.rpush(self.queue, self.body)
        self._state = "REQUEUED" if requeue else "REJECTED"


def _headers_of(raw: bytes) -> dict[str, Any]:
    """The headers object of a JSON envelope, when it has one (so that a dead letter goes
    under the id its producer polls), else none."""
    try:
        envelope = loads(bytes_to_str(raw))
    except Exception:
        return {}
    headers = envelope.get("headers") if isinstance(envelope, dict) else None
    return headers if isinstance(headers, dict) else {}


def touch(messages: Sequence[Any], channel: Any) -> None:
    """Mark held messages as delivered now, in one round trip, so that no other worker's
    restore scan takes them while this worker still holds them (a message can wait in the
    buffer through a whole batch before its own)."""
    tags = [message.delivery_tag for message in messages if message.delivery_tag is not None]
    if not tags:
        return
    now = time.time()
    with channel.conn_or_acquire() as client:
        client.zadd(channel.qos.unacked_index_key, dict.fromkeys(tags, now), xx=True)


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
        if message.acknowledged:
            continue
        if message.delivery_tag is None:  # an unreadable item in nobody's books
            message.ack()
            continue
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
