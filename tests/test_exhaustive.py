"""
Every sequence of steps up to a depth, on a fake endpoint and clock: start,
stop, whenConnected with and without failAfterFailures, the attempt
succeeding (its prepareConnection ok, failing or hanging), failing or left
hanging, a late prepareConnection finishing, the connection lost (or refused:
ended with a certificate error), the clock advancing, reconnect, a drop (at
once, or as a failure); with and without retireConnection.

Worlds are deterministic, so two sequences that leave the same world
(L{signature}) have the same futures: each world is expanded once, breadth
first, so the first time it is met is with the most steps left.  Every
world met is checked against the stateful tests' invariants, and shut down
once to see that everything it handed out fires.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from invariants import checkMachine
from worlds import Step, World

DEPTH = int(os.environ.get("RECONNECT_EXHAUSTIVE_DEPTH", "7"))

ALPHABET: list[Step] = [
    ("start",),
    ("stop",),
    ("whenConnected", None),
    ("whenConnected", 1),
    ("succeed", "ok"),
    ("succeed", "fail"),
    ("succeed", "hang"),
    ("prepared", "ok"),
    ("fail",),
    ("lose", "newest"),
    ("lose", "refused"),
    ("advance", 1.0),
    ("reconnect",),
    ("drop", 0),
    ("drop", 2),
]

# Worlds as tests/worlds.py makes them: a retry after 1 s (the policy gives
# up at the third failure in a row), and here an attempt limited to 2 s, so
# that a hanging attempt or preparation ends once the clock has moved twice.
CONFIGURATIONS = {
    "break before make": {"handsOver": False},
    "make before break": {"handsOver": True},
}


def signature(world: World) -> tuple[object, ...]:
    """
    What the world's future depends on: the machine's state and the data
    its steps can reach, not its counters.
    """
    service = world.service
    machine = service._machine
    now = world.clock.seconds()
    return (
        service.state,
        machine.failedAttempts,
        service.lastFailure is not None,
        tuple(remaining for _, remaining in machine._connectWaiters or ()),
        tuple(world.outcomes()),
        tuple(
            (a.protocol is not None, a.lost, a.cancelled, a.deferred.called)
            for a in world.endpoint.attempts
            if not a.lost and not (a.deferred.called and a.protocol is None)
        ),
        tuple(p.called for p in world.mood.prepared),
        tuple(
            sorted(
                (call.getTime() - now, getattr(call.func, "__name__", ""))
                for call in world.clock.getDelayedCalls()
            )
        ),
        len(machine._retired or ()),
    )


def replay(steps: tuple[Step, ...], configuration: dict[str, Any]) -> World:
    world = World("compiled", attemptTimeout=2.0, **configuration)
    for step in steps:
        world.do(step)
    return world


def checkWorld(world: World) -> None:
    """
    The stateful tests' invariants, and what a stopped or given-up service
    owes its callers.
    """
    checkMachine(world.service, world.clock)
    state = world.service.state
    if state in ("stopped", "gaveUp"):
        assert "pending" not in world.outcomes("whenConnected")
    if state == "stopped" and not world.service._machine._retired:
        assert "pending" not in world.outcomes("stop")


def checkShutDown(world: World) -> None:
    """
    Stopped and left alone, the world ends with every Deferred fired and
    nothing scheduled.
    """
    world.shutDown()
    assert world.service.state == "stopped"
    assert "pending" not in world.outcomes()
    assert world.clock.getDelayedCalls() == []
    assert not world.service._machine._retired


def explore(configuration: dict[str, Any]) -> tuple[int, int, set[str]]:
    """
    Every sequence up to L{DEPTH}, breadth first, each world once.

    @return: the number of distinct worlds, of steps taken, and the states
        met.
    """
    seen = {signature(replay((), configuration))}
    frontier: list[tuple[Step, ...]] = [()]
    states: set[str] = {"init"}
    steps = 0
    for depth in range(DEPTH):
        following = []
        for path in frontier:
            for step in ALPHABET:
                world = replay(path + (step,), configuration)
                steps += depth + 1
                try:
                    checkWorld(world)
                except AssertionError as error:
                    raise AssertionError(f"after {path + (step,)}: {error}") from None
                key = signature(world)
                if key in seen:
                    continue
                seen.add(key)
                states.add(world.service.state)
                try:
                    checkShutDown(world)
                except AssertionError as error:
                    raise AssertionError(
                        f"shutting down after {path + (step,)}: {error}"
                    ) from None
                following.append(path + (step,))
        frontier = following
    return len(seen), steps, states


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_everySequence(name: str) -> None:
    """
    Every sequence of steps up to L{DEPTH} keeps the invariants, and every
    world it reaches shuts down cleanly; every state but C{init}'s
    neighbours is reached.
    """
    distinct, steps, states = explore(CONFIGURATIONS[name])
    sequences = sum(len(ALPHABET) ** depth for depth in range(1, DEPTH + 1))
    print(
        f"\n{name}: depth {DEPTH}, {sequences} sequences covered, "
        f"{distinct} distinct worlds, {steps} steps replayed"
    )
    expected = {
        "init",
        "connecting",
        "waiting",
        "connected",
        "reconnecting",
        "dropping",
        "disconnecting",
        "restarting",
        "stopped",
        "gaveUp",
    }
    if CONFIGURATIONS[name]["handsOver"]:
        expected = expected | {"handingOver"}
    assert states == expected
