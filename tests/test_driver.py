"""
Tests for L{reconnect._driver}: compiled inputs do what automat's do, and
machines they cannot stand in for are left to automat.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from automat import MethodicalMachine, NoTransition

from reconnect._driver import (
    FORCE_AUTOMAT,
    CompiledInputs,
    _probeClass,
    compileInputs,
    discard,
)
from reconnect._machine import _ClientMachine, _compiled

# The driver's own probe machine: two states, outputs that take none, some
# and all of their input's arguments, and a missing transition.
Door: Any = _probeClass()


def doorToCompile() -> tuple[CompiledInputs, Any]:
    """
    The probe machine's compiled inputs, and a fresh subclass to put them on.
    """
    compiled = compileInputs(Door._machine, discard)
    assert compiled is not None

    class FastDoor(Door):
        pass

    return compiled, FastDoor


def test_sameOutcomesAsAutomat() -> None:
    """
    The compiled inputs enter the same states and run the same outputs, with
    the same arguments, in the same order, as automat's.
    """
    compiled, FastDoor = doorToCompile()
    compiled.install(FastDoor, ["push", "pull"])
    fast, slow = FastDoor(), Door()
    for door in (fast, slow):
        door.push("ann", "gently")
        door.pull()
        door.push("bob", "hard")
    assert fast.did == slow.did
    assert fast.did[:3] == [
        ("creak",),
        ("greet", "ann"),
        ("note", "ann", "gently"),
    ]
    assert fast.state() == slow.state() == "open"


def test_missingTransitionRaisesAsAutomatDoes() -> None:
    """
    An input with no transition from the current state raises automat's
    L{NoTransition}, and changes nothing.
    """
    compiled, FastDoor = doorToCompile()
    compiled.install(FastDoor, ["push", "pull"])
    door = FastDoor()
    with pytest.raises(NoTransition):
        door.pull()
    assert door.state() == "shut"
    assert door.did == []


def test_everyInputIsCompiledOrNone() -> None:
    """
    Compiled inputs keep the state where automat's would look for their
    transitioner, so an input left to automat is refused before anything
    is installed.
    """
    compiled, FastDoor = doorToCompile()
    with pytest.raises(ValueError, match="push"):
        compiled.install(FastDoor, ["pull"])
    assert "pull" not in FastDoor.__dict__


def test_noTransitionerPerInstance() -> None:
    """
    An instance driven by compiled inputs keeps the name of its state and
    nothing else: no transitioner of automat's is made for it.
    """
    compiled, FastDoor = doorToCompile()
    compiled.install(FastDoor, ["push", "pull"])
    door = FastDoor()
    door.push("ann", "gently")
    assert getattr(door, Door._machine._symbol) == "open"


def test_otherCollectorIsLeftToAutomat() -> None:
    """
    A machine whose transitions collect their outputs' results is not
    compiled: the compiled inputs return nothing.
    """
    assert compileInputs(Door._machine, list) is None


def test_outputTakingOtherArgumentsIsLeftToAutomat() -> None:
    """
    An output that takes an argument other than a leading run of its
    input's is not compiled.
    """

    class Skipping:
        _machine = MethodicalMachine()

        @_machine.state(initial=True)
        def only(self) -> None:
            "The only state."

        @_machine.input()
        def go(self, first: int, second: int) -> None:
            "Go."

        @_machine.output()
        def _second(self, second: int) -> None:
            "Use the second argument only."

        only.upon(go, enter=only, outputs=[_second], collector=discard)

    assert compileInputs(Skipping._machine, discard) is None


def test_clientMachineIsCompiled() -> None:
    """
    The service's machine is compiled (unless automat's own inputs were
    asked for), and its table holds every transition automat holds, with
    the same target and outputs.
    """
    if os.environ.get(FORCE_AUTOMAT):
        assert _compiled is None
        return
    assert _compiled is not None
    transitions = _ClientMachine._machine._automaton.allTransitions()
    assert len(_compiled._table) == len(transitions)
    for state, symbol, newState, outputs in transitions:
        target, steps = _compiled._table[state, symbol]
        assert target is newState
        assert [method for method, _ in steps] == [o.method for o in outputs]
    assert compileInputs(_ClientMachine._machine, discard) is not None


SCENARIO = """
import json, os, sys
from twisted.logger import globalLogPublisher

warnings = []
globalLogPublisher.addObserver(
    lambda e: warnings.append(e) if e.get("log_namespace") == "reconnect" else None
)

{patch}

from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock

import reconnect
import reconnect._machine
from reconnect.testing import FakeEndpoint

clock, endpoint = Clock(), FakeEndpoint()
service = reconnect.ClientService(
    endpoint, Factory.forProtocol(Protocol), lambda n: 1.0, clock=clock
)
seen = []
service.startService(); seen.append(service.state)
endpoint.last.fail(); seen.append(service.state)
clock.advance(1); seen.append(service.state)
endpoint.last.succeed(); seen.append(service.state)
seen.append(service.whenConnected().called)
endpoint.last.lose(); seen.append(service.state)
stopped = service.stopService(); seen.append([service.state, stopped.called])
print(json.dumps({{
    "compiled": reconnect._machine._compiled is not None,
    "seen": seen,
    "warnings": len(warnings),
}}))
"""

NO_ALL_TRANSITIONS = """
import automat._core
del automat._core.Automaton.allTransitions
"""

NO_STATES = """
import automat._core
del automat._core.Automaton.states
"""


def runScenario(patch: str, **env: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", SCENARIO.format(patch=patch)],
        capture_output=True,
        text=True,
        check=True,
        env={**{k: v for k, v in os.environ.items() if k != FORCE_AUTOMAT}, **env},
    )
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "patch, env",
    [
        (NO_ALL_TRANSITIONS, {}),
        (NO_STATES, {}),
        ("", {FORCE_AUTOMAT: "1"}),
    ],
    ids=["allTransitions missing", "states missing", "forced by environment"],
)
def test_automatInternalsAway(patch: str, env: dict[str, str]) -> None:
    """
    With automat's internals not as the driver expects (a name missing, the
    states not to be listed), or with automat's inputs asked for,
    C{import reconnect} still works, the machine keeps automat's own inputs
    (saying so once in the log, unless asked for) and a service behaves as
    with compiled ones.
    """
    normal = runScenario("")
    assert normal["compiled"] and normal["warnings"] == 0
    changed = runScenario(patch, **env)
    assert not changed["compiled"]
    assert changed["seen"] == normal["seen"]
    assert changed["warnings"] == (0 if env else 1)
