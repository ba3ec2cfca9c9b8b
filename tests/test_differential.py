"""
Both engines, one machine: the same random walks over a service's public
API, with misbehaving user code, on the compiled inputs and on automat's own,
give the same state after every step, the same events and the same outcome
for every Deferred.  Both engines run in this one process, whatever
C{RECONNECT_AUTOMAT_INPUTS} says.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from invariants import checkMachine
from worlds import ENGINES, MOODS, Step, World

from reconnect import getDebugEvents, setDebugEvents

STEPS: st.SearchStrategy[Step] = st.one_of(
    st.sampled_from(
        [
            ("start",),
            ("stop",),
            ("reconnect",),
            ("drop", 0),
            ("drop", 2),
            ("cancelWaiter",),
            ("fail",),
            ("lose", "newest"),
            ("lose", "oldest"),
            ("lose", "refused"),
            ("prepared", "ok"),
            ("prepared", "fail"),
        ]
    ),
    st.tuples(st.just("whenConnected"), st.sampled_from([None, 1, 2, 3])),
    st.tuples(st.just("succeed"), st.sampled_from(MOODS["prepare"])),
    st.tuples(st.just("advance"), st.sampled_from([0.0, 0.5, 1.0, 1.5, 5.0])),
    st.sampled_from(
        [("mood", what, value) for what, values in MOODS.items() for value in values]
    ),
)


@pytest.fixture(autouse=True)
def debugEvents() -> Iterator[None]:
    """
    Debug events on, so that they are compared too.
    """
    before = getDebugEvents()
    setDebugEvents(True)
    yield
    setDebugEvents(before)


def test_enginesDiffer() -> None:
    """
    The two machine classes really run on different engines.
    """
    onAutomat, onCompiled = ENGINES["automat"], ENGINES["compiled"]
    assert type(vars(onAutomat)["start"]).__name__ == "MethodicalInput"
    assert callable(vars(onCompiled)["start"])
    assert type(vars(onCompiled)["start"]).__name__ == "function"


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    steps=st.lists(STEPS, max_size=60),
    handsOver=st.booleans(),
    attemptTimeout=st.sampled_from([None, 5.0]),
    resetAfter=st.sampled_from([None, 1.0]),
    immediateFailover=st.booleans(),
)
def test_sameWalkSameMachine(
    steps: list[Step],
    handsOver: bool,
    attemptTimeout: Any,
    resetAfter: Any,
    immediateFailover: bool,
) -> None:
    """
    After every step, and once both are shut down, the two worlds have seen
    the same: state, counters, events, the outcome of every Deferred, the
    clock's calls and the endpoint's attempts.
    """
    worlds = [
        World(engine, handsOver, attemptTimeout, resetAfter, immediateFailover)
        for engine in ENGINES
    ]
    automat, compiled = worlds
    with automat.listening(), compiled.listening():
        for step in steps:
            for world in worlds:
                world.do(step)
                checkMachine(world.service, world.clock)
            assert compiled.seen() == automat.seen(), step
        for world in worlds:
            world.mood.callbacks = "ok"
            world.shutDown()
        assert compiled.seen() == automat.seen()
    for world in worlds:
        assert world.service.state == "stopped"
        assert "pending" not in world.outcomes()
        assert world.clock.getDelayedCalls() == []


def test_aDifferenceIsSeen(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    The comparison catches an engine that does something else: here a
    compiled machine whose C{start} does what C{handOver} does.
    """
    onCompiled = ENGINES["compiled"]
    broken = type("Broken", (onCompiled,), {"__slots__": ()})
    broken.start = onCompiled.handOver  # type: ignore[attr-defined]
    monkeypatch.setitem(ENGINES, "compiled", broken)
    automat, compiled = World("automat"), World("compiled")
    for world in (automat, compiled):
        world.do(("start",))
    assert compiled.seen()["state"] == "init"
    assert compiled.seen() != automat.seen()
    automat.shutDown()
