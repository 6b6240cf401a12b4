"""What one worker process owns, created at process init and closed at shutdown.

One ``ProcessResources`` per process: an asyncio event loop (the database engine and other
async clients run on it), and everything later resources add through ``enter``. Closing
unwinds them in reverse order. The state guard refuses use before ``open`` and after
``close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from loguru import logger

from worker.settings import Settings

T = TypeVar("T")


class ResourceState(enum.Enum):
    """Lifecycle of a resource owner."""

    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


class ProcessResources:
    """Per-process resources of a worker.

    Args:
        settings: The service settings.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = ResourceState.NEW
        self.pid = os.getpid()
        self._stack = contextlib.ExitStack()
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"ProcessResources(pid={self.pid}, state={self.state.value})"

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The process's event loop."""
        self._require_open()
        assert self._loop is not None
        return self._loop

    def open(self) -> None:
        """Create the event loop and every registered resource."""
        if self.state is not ResourceState.NEW:
            raise RuntimeError(f"process resources cannot open from state {self.state.value}")
        loop = asyncio.new_event_loop()
        self._stack.callback(loop.close)
        self._loop = loop
        self.state = ResourceState.OPEN
        logger.info("process resources opened", pid=self.pid)

    def enter(self, close: Callable[[], None]) -> None:
        """Register ``close`` to run (in reverse order of registration) at ``close()``."""
        self._require_open()
        self._stack.callback(close)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion on the process's loop."""
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        """Close everything opened, newest first; safe to call twice."""
        if self.state is not ResourceState.OPEN:
            return
        try:
            self._stack.close()
        finally:
            self.state = ResourceState.CLOSED
            self._loop = None
            logger.info("process resources closed", pid=self.pid)

    def _require_open(self) -> None:
        if self.state is not ResourceState.OPEN:
            raise RuntimeError(f"process resources are {self.state.value}, not open")
