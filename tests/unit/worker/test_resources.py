from __future__ import annotations

import pytest

from worker.resources import ProcessResources, ResourceState
from worker.settings import Settings


async def _answer() -> int:
    return 42


def test_resources_open_run_and_close_in_reverse_order() -> None:
    resources = ProcessResources(Settings())
    closed: list[str] = []
    resources.open()
    resources.enter(lambda: closed.append("engine"))
    resources.enter(lambda: closed.append("model"))
    assert resources.run(_answer()) == 42
    loop = resources.loop
    resources.close()
    assert closed == ["model", "engine"]
    assert loop.is_closed()
    assert resources.state is ResourceState.CLOSED
    resources.close()  # twice is harmless


def test_resources_refuse_use_outside_their_lifetime() -> None:
    resources = ProcessResources(Settings())
    with pytest.raises(RuntimeError, match="new, not open"):
        _ = resources.loop
    resources.open()
    resources.close()
    with pytest.raises(RuntimeError, match="closed, not open"):
        resources.enter(lambda: None)
    with pytest.raises(RuntimeError, match="cannot open from state closed"):
        resources.open()
