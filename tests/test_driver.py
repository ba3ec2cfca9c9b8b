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

from reconnect import _driver
from reconnect._driver import (
    COMPILED_STATE,
    FORCE_AUTOMAT,
    NO_TRACING,
    CompiledInputs,
    _probeClass,
    compileInputs,
    declaredInputs,
    discard,
    installInputs,
    stateSlots,
    transition,
    whyNotCompiled,
)
from reconnect._machine import _INPUTS, _ClientMachine, _compiled, _discard

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
        __slots__ = ()

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
    An instance driven by compiled inputs keeps the name of its state in a
    slot of the driver's own, and nothing else: no transitioner of
    automat's is made for it, and automat's slot stays empty.
    """
    compiled, FastDoor = doorToCompile()
    compiled.install(FastDoor, ["push", "pull"])
    door = FastDoor()
    door.push("ann", "gently")
    assert getattr(door, COMPILED_STATE) == "open"
    assert not hasattr(door, Door._machine._symbol)
    assert not hasattr(door, "__dict__")


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


ELSEWHERE = """
import automat._methodical as methodical
original = methodical._transitionerFromInstance
methodical._transitionerFromInstance = (
    lambda oself, symbol, automaton: original(oself, symbol + "Elsewhere", automaton)
)
"""


@pytest.mark.parametrize("env", [{}, {FORCE_AUTOMAT: "1"}], ids=["compiled", "forced"])
def test_automatKeepingStateElsewhere(env: dict[str, str]) -> None:
    """
    An automat that keeps an instance's state under another attribute than
    its machine's C{_symbol} gets a machine with a C{__dict__}: automat's
    own inputs (forced, or fallen back to) work under it, and so do the
    compiled ones, which agree with automat on the probe.
    """
    normal = runScenario("")
    changed = runScenario(ELSEWHERE, **env)
    assert changed["seen"] == normal["seen"]
    assert changed["compiled"] == (not env)
    assert changed["warnings"] == 0


def test_probeIsLaidOutAsTheMachine() -> None:
    """
    The probe machine has the slots the service's machine has for its
    state, and no C{__dict__}: what the probe shows holds under slots.
    """
    probeSlots = stateSlots(Door._machine)
    machineSlots = stateSlots(_ClientMachine._machine)
    assert probeSlots[1:] == machineSlots[1:] == (COMPILED_STATE,)
    assert probeSlots[0] == Door._machine._symbol
    assert machineSlots[0] == _ClientMachine._machine._symbol
    assert set(probeSlots) <= set(Door.__slots__)
    assert set(machineSlots) <= set(_ClientMachine.__slots__)
    assert not hasattr(Door(), "__dict__")
    assert not hasattr(_ClientMachine.__new__(_ClientMachine), "__dict__")


def test_inputsAreTheDeclaredOnes() -> None:
    """
    The machine's list of inputs is read from automat's own declarations,
    in the order the class declares them.
    """
    symbols = _ClientMachine._machine._automaton.inputAlphabet()
    assert sorted(_INPUTS) == sorted(s.method.__name__ for s in symbols)
    assert _INPUTS[:3] == ("start", "stop", "whenConnected")
    assert declaredInputs(Door, Door._machine) == ("push", "pull")


def machineWith(inputBody: Any) -> Any:
    """
    A one-state machine whose one input is C{inputBody}, with an output
    that takes its first argument.
    """

    class Odd:
        _machine = MethodicalMachine()

        @_machine.state(initial=True, serialized="only")
        def only(self) -> None:
            "The only state."

        go = _machine.input()(inputBody)

        @_machine.output()
        def _use(self, first: int) -> None:
            "Use the first argument."

        transition(only, go, only, _use)

    return Odd


def plain(self: object, first: int, second: int) -> None:
    "An input with plain arguments."


def withDefault(self: object, first: int, second: int = 2) -> None:
    "An input with a default."


def withKeywordOnly(self: object, first: int, *, second: int) -> None:
    "An input with a keyword-only argument."


def withStar(self: object, first: int, *rest: int) -> None:
    "An input with C{*} arguments."


def withStarStar(self: object, first: int, **rest: int) -> None:
    "An input with C{**} arguments."


def withBody(self: object, first: int, second: int) -> None:
    "An input whose body returns something (automat does not look)."
    return 1  # type: ignore[return-value]


@pytest.mark.parametrize(
    "inputBody, why",
    [
        (withDefault, "input withDefault: argument second has a default"),
        (withKeywordOnly, "input withKeywordOnly: argument second is keyword-only"),
        (withStar, "input withStar: it takes *rest"),
        (withStarStar, "input withStarStar: it takes **rest"),
        (withBody, "the body of input withBody does something"),
    ],
    ids=["default", "keyword-only", "*args", "**kwargs", "body"],
)
def test_unusualArgumentsAreLeftToAutomat(
    inputBody: Any, why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    An input with default, keyword-only, C{*} or C{**} arguments runs
    differently under compiled inputs (automat passes defaults on to the
    outputs), and so does one whose body does something (automat calls it
    at every call; compiled inputs only to check arguments): such a machine
    is not compiled, and installing says so once, naming the input and
    argument at fault, and leaves automat's inputs in place.
    """
    monkeypatch.delenv(FORCE_AUTOMAT, raising=False)
    Odd = machineWith(inputBody)
    Plain = machineWith(plain)
    assert compileInputs(Plain._machine, discard) is not None
    assert compileInputs(Odd._machine, discard) is None
    warnings: list[dict[str, Any]] = []
    observer = warnings.append
    from twisted.logger import globalLogPublisher

    globalLogPublisher.addObserver(observer)
    try:
        assert installInputs(Odd, Odd._machine, discard) is None
    finally:
        globalLogPublisher.removeObserver(observer)
    assert [e["log_format"] for e in warnings if e.get("why")] == [
        "reconnect: using automat's own (slower) inputs: {why}"
    ]
    assert [e["why"] for e in warnings if e.get("why")] == [
        f"Odd could not be compiled: {why}"
    ]
    assert "go" not in vars(Odd) or not callable(vars(Odd)["go"])


def withDocstringOnly(self: object, first: int, second: int) -> None:
    "Only a docstring."


def withPass(self: object, first: int, second: int) -> None:
    pass


def withEllipsis(self: object, first: int, second: int) -> None:
    "A docstring and an ellipsis."
    ...


@pytest.mark.parametrize("inputBody", [withDocstringOnly, withPass, withEllipsis])
def test_emptyBodiesAreCompiled(inputBody: Any) -> None:
    """
    An input whose body is a docstring, C{pass} or C{...} is compiled.
    """
    Odd = machineWith(inputBody)
    assert compileInputs(Odd._machine, discard) is not None


def test_serviceInputsHaveEmptyBodies() -> None:
    """
    Every input of the service's machine does nothing in its body, so the
    compiled inputs may stand in for them.
    """
    assert whyNotCompiled(_ClientMachine._machine, _discard) is None


def bothEngines() -> list[tuple[str, Any]]:
    """
    The probe machine on automat's inputs and on compiled ones.
    """
    compiled, FastDoor = doorToCompile()
    compiled.install(FastDoor, ["push", "pull"])
    return [("automat", Door), ("compiled", FastDoor)]


@pytest.mark.parametrize(
    "args, kwargs",
    [((), {}), (("ann",), {}), (("ann", "b", "c"), {}), (("ann",), {"who": "x"})],
    ids=["none", "too few", "too many", "twice"],
)
def test_argumentsCheckedBeforeAnyChange(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    """
    A call with the wrong arguments raises the same C{TypeError} on both
    engines, before the state changes or an output runs.
    """
    raised = []
    for _, doorClass in bothEngines():
        door = doorClass()
        with pytest.raises(TypeError) as error:
            door.push(*args, **kwargs)
        assert door.state() == "shut" and door.did == []
        raised.append(str(error.value))
    assert raised[0] == raised[1]


def test_keywordCallsAsAutomat() -> None:
    """
    Arguments given by keyword reach the outputs as automat passes them.
    """
    done = []
    for _, doorClass in bothEngines():
        door = doorClass()
        door.push(how="softly", who="ann")
        door.push("bob", how="hard")
        done.append((door.state(), door.did))
    assert done[0] == done[1]
    assert done[0][1][:3] == [("creak",), ("greet", "ann"), ("note", "ann", "softly")]


@pytest.mark.parametrize(
    "failure", [StopIteration, RuntimeError, KeyError, ValueError, AttributeError]
)
def test_installingNeverRaises(
    failure: type[Exception], monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    Whatever goes wrong while compiling or installing, automat's inputs stay
    and nothing escapes.
    """

    def broken(*args: object) -> None:
        raise failure("surprise")

    monkeypatch.delenv(FORCE_AUTOMAT, raising=False)
    monkeypatch.setattr(_driver, "_compiledAgrees", broken)
    Door2 = _probeClass()
    assert installInputs(Door2, Door2._machine, discard) is None
    door = Door2()
    door.push("ann", "gently")
    assert door.state() == "open"


def test_installIsAllOrNothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    If putting one compiled input on the class fails, the ones already put
    there are taken back: the class keeps automat's inputs, all of them.
    """
    compiled, FastDoor = doorToCompile()
    before = dict(vars(FastDoor))

    class Refusing(type):
        def __setattr__(cls, name: str, value: object) -> None:
            if name == "pull" and getattr(value, "__module__", "") == _driver.__name__:
                raise RuntimeError("no")
            super().__setattr__(name, value)

    RefusingDoor = Refusing("RefusingDoor", (Door,), {"__slots__": ()})
    with pytest.raises(RuntimeError):
        compiled.install(RefusingDoor, ["push", "pull"])
    assert (
        "push" not in vars(RefusingDoor)
        or vars(RefusingDoor)["push"] is vars(Door)["push"]
    )
    door = RefusingDoor()
    door.push("ann", "gently")
    assert door.state() == "open"
    assert dict(vars(FastDoor)) == before


def test_automatPathsOnALiveCompiledInstance() -> None:
    """
    Compiled inputs call no tracer: C{setTrace} on a live compiled instance
    refuses, saying why, rather than set a tracer never to be called; the
    compiled inputs go on working from where they were.  On automat's
    inputs the same calls are traced.
    """

    class TracedDoor(Door):  # type: ignore[misc, valid-type]
        __slots__ = ()
        setTrace = Door._machine._setTrace

    compiled = compileInputs(Door._machine, discard)
    assert compiled is not None
    compiled.install(TracedDoor, ["push", "pull"])
    door = TracedDoor()
    door.push("ann", "gently")
    with pytest.raises(RuntimeError) as refused:
        door.setTrace(lambda old, input, new: None)
    assert str(refused.value) == NO_TRACING
    assert "RECONNECT_AUTOMAT_INPUTS=1" in NO_TRACING
    assert door.state() == "open"
    door.pull()
    assert door.state() == "shut"
    assert getattr(door, COMPILED_STATE) == "shut"

    class TracedOnAutomat(Door):  # type: ignore[misc, valid-type]
        __slots__ = ()
        setTrace = Door._machine._setTrace

    traced: list[tuple[str, str, str]] = []
    slow = TracedOnAutomat()
    slow.push("ann", "gently")
    slow.setTrace(lambda old, input, new: traced.append((old, input, new)))
    slow.pull()
    assert traced == [("open", "pull", "shut")]


@pytest.mark.parametrize("engine", ["compiled", "automat"])
def test_tracingTheServiceMachine(engine: str) -> None:
    """
    automat's C{setTrace} on a live service's machine either traces every
    transition (automat's inputs) or refuses, saying why (compiled inputs):
    never a tracer that is silently not called.
    """
    from twisted.internet.protocol import Factory, Protocol
    from twisted.internet.task import Clock
    from worlds import machineClass

    import reconnect
    from reconnect.testing import FakeEndpoint

    with machineClass(engine):
        clock, endpoint = Clock(), FakeEndpoint()
        service = reconnect.ClientService(
            endpoint, Factory.forProtocol(Protocol), lambda n: 1.0, clock=clock
        )
    service.startService()
    traced: list[tuple[str, str, str]] = []

    def trace() -> None:
        setTrace = _ClientMachine._machine._setTrace.__get__(service._machine)
        setTrace(lambda old, input, new: traced.append((old, input, new)))

    if engine == "compiled":
        with pytest.raises(RuntimeError, match="RECONNECT_AUTOMAT_INPUTS=1"):
            trace()
    else:
        trace()
    endpoint.last.succeed()
    endpoint.last.lose()
    clock.advance(1)
    assert service.state == "connecting"
    assert (traced != []) == (engine == "automat")
    service.stopService()


@pytest.mark.parametrize("engine", ["compiled", "automat"])
def test_malformedInternalCallChangesNothing(engine: str) -> None:
    """
    An input of the service's machine called with the wrong arguments raises
    before it changes the state or runs an output, on either engine: no
    half-done transition, no event.
    """
    from worlds import World

    world = World(engine)
    with world.listening():
        world.do(("start",))
        machine = world.service._machine
        data, events = machine._data, list(world.events)
        with pytest.raises(TypeError):
            machine._connectionFailed()
        with pytest.raises(TypeError):
            machine._retryLater(None)
        assert world.service.state == "connecting" and machine._data is data
        assert world.events == events
    assert world.clock.getDelayedCalls() != []
    world.shutDown()


@pytest.mark.parametrize(
    "value, forced",
    [
        ("", False),
        ("0", False),
        ("false", False),
        ("False", False),
        ("no", False),
        ("NO", False),
        ("off", False),
        (" off ", False),
        ("1", True),
        ("yes", True),
        ("true", True),
        ("on", True),
    ],
)
def test_forcedByEnvironment(
    value: str, forced: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    C{RECONNECT_AUTOMAT_INPUTS} set to a usual spelling of false (C{0},
    C{false}, C{no}, C{off}, in any case, or nothing) leaves the compiled
    inputs on; any other value leaves automat's own.
    """
    monkeypatch.setenv(FORCE_AUTOMAT, value)
    Door2 = _probeClass()
    installed = installInputs(Door2, Door2._machine, discard)
    assert (installed is None) == forced
    door = Door2()
    door.push("ann", "gently")
    assert door.state() == "open"
