"""
A faster way to feed inputs to a C{MethodicalMachine}, with the same table;
and the one place where reconnect reads automat's private attributes.

automat declares, checks, draws and serializes our machine; this module only
changes how an input is carried out.  For each input automat builds a new
wrapper at every attribute access, finds the transition by comparing the
current state and the input with every transition of the machine, and works
out again, for every output, which of the input's arguments it takes.  That
costs more than the reconnect cycle's own bookkeeping; and it gives each
instance a transitioner object, with a dict, that outweighs the state it
keeps.  L{compileInputs} does those three things once, when the class is
defined: it reads the machine's transitions into a dict keyed by state and
input, and for every output the number of leading input arguments it takes;
the compiled inputs keep each instance's state object in one slot.

What it reads of automat is private, so nothing here may break C{import
reconnect}: every read is guarded, and before the compiled inputs are put
on a class, L{installInputs} runs a small probe machine through automat's
inputs and through compiled ones and compares what they did.  Any surprise
(a missing name, a changed shape, a different outcome) leaves automat's own
inputs in place, which behave the same, only slower, and says so in one log
line.  Setting the environment variable C{RECONNECT_AUTOMAT_INPUTS=1} does
the same on purpose.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Optional

from automat import MethodicalMachine, NoTransition
from twisted.logger import Logger

Transitions = dict[tuple[Any, Any], tuple[Any, tuple[tuple[Any, int], ...]]]

FORCE_AUTOMAT = "RECONNECT_AUTOMAT_INPUTS"

_log = Logger(namespace="reconnect")


class CompiledInputs:
    """
    The transitions of one C{MethodicalMachine}, ready for lookup.

    Compiled inputs keep the name of each instance's current state in the
    attribute where automat would keep the instance's transitioner (an
    object of its own, with a dict): once they are installed automat never
    sees the instance, so nothing else reads that attribute.  Names, not
    automat's state objects, because a string keeps its hash: automat's
    states compute theirs in Python, on every lookup.
    """

    def __init__(
        self,
        stateAttribute: str,
        inputs: dict[str, Any],
        table: Transitions,
        initial: Any,
    ) -> None:
        self._stateAttribute = stateAttribute
        self._inputs = inputs
        self._table = table
        self._initial = initial
        self._states = {state.serialized: state for state, _ in table}
        self._states[initial.serialized] = initial
        self._byName = {
            (state.serialized, symbol): (new.serialized, steps)
            for (state, symbol), (new, steps) in table.items()
        }
        self.replaced: dict[str, object] = {}

    def install(
        self, machineClass: type, names: Sequence[str], serializer: str = "state"
    ) -> None:
        """
        Replace each input named in C{names} on C{machineClass} with a plain
        method that carries it out, and the serializer named C{serializer}
        (which must return the state's serialized name as it is) with a
        plain method that reads it.  Being plain methods, they cost nothing
        per instance.

        Every input of the machine must be named: an instance whose state
        is kept here cannot be handed to automat's own inputs.  What was
        replaced stays in L{replaced}, by name.
        """
        missing = set(self._inputs) - set(names)
        if missing:
            raise ValueError(f"inputs left to automat: {sorted(missing)}")
        self.replaced = {
            name: next(
                vars(cls)[name] for cls in machineClass.__mro__ if name in vars(cls)
            )
            for name in [*names, serializer]
        }
        for name in names:
            setattr(machineClass, name, self._carryingOut(self._inputs[name]))
        setattr(machineClass, serializer, self._readingState())

    def _readingState(self) -> Callable[[object], str]:
        stateAttribute = self._stateAttribute
        initial: str = self._initial.serialized

        def state(instance: object) -> str:
            current: str = getattr(instance, stateAttribute, initial)
            return current

        state.__doc__ = "The name of the current state."
        return state

    def _carryingOut(self, symbol: Any) -> Callable[..., None]:
        table = self._byName
        states = self._states
        stateAttribute = self._stateAttribute
        initial = self._initial.serialized

        def carryOut(instance: object, *args: object) -> None:
            current = getattr(instance, stateAttribute, initial)
            found = table.get((current, symbol))
            if found is None:
                raise NoTransition(states[current], symbol)
            new, outputs = found
            setattr(instance, stateAttribute, new)
            for method, taken in outputs:
                method(instance, *args[:taken])

        carryOut.__name__ = symbol.method.__name__
        carryOut.__doc__ = symbol.method.__doc__
        return carryOut


def stateSlots(machine: MethodicalMachine) -> tuple[str, ...]:
    """
    The C{__slots__} entry a machine class needs for automat to keep each
    instance's state: the attribute automat uses, or, if that cannot be
    told, a C{__dict__}.
    """
    attribute = getattr(machine, "_symbol", None)
    return (attribute,) if isinstance(attribute, str) else ("__dict__",)


def compileInputs(
    machine: MethodicalMachine, collector: Callable[..., object]
) -> Optional[CompiledInputs]:
    """
    Read C{machine}'s transitions into a table.

    @param collector: the collector of every transition: the compiled inputs
        run the outputs and return nothing, so they stand in only for
        transitions whose collector discards the outputs' results.
    @return: the table, or C{None} if this automat does not keep its
        transitions as expected, if a transition has another collector, or
        if an output takes other than a leading run of its input's
        arguments.
    """
    try:
        stateAttribute = machine._symbol
        if not isinstance(stateAttribute, str):
            return None
        inputs: dict[str, object] = {}
        table: Transitions = {}
        for state, symbol, newState, outputs in machine._automaton.allTransitions():
            inputArgs = tuple(symbol.argSpec.args[1:])
            if symbol.argSpec.varargs or symbol.argSpec.kwonlyargs:
                return None
            if symbol.collectors[state] is not collector:
                return None
            inputs[symbol.method.__name__] = symbol
            steps = []
            for output in outputs:
                outputArgs = tuple(output.argSpec.args[1:])
                if inputArgs[: len(outputArgs)] != outputArgs:
                    return None
                steps.append((output.method, len(outputArgs)))
            table[state, symbol] = (newState, tuple(steps))
        initial = machine._automaton.initialState
        names = [state.serialized for state in machine._automaton.states()]
        if not all(isinstance(name, str) for name in names):
            return None
        if len(set(names)) != len(names):
            return None
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    return CompiledInputs(stateAttribute, inputs, table, initial)


def transitionsOf(
    machine: MethodicalMachine,
) -> tuple[str, list[str], list[tuple[str, str, str, list[str]]]]:
    """
    The machine as plain names, for drawing it: its initial state, its
    states, and each transition as (state, input, new state, outputs).

    @raise RuntimeError: if this automat keeps its machine in another shape.
    """

    def name(symbol: Any) -> str:
        return str(symbol.method.__name__)

    try:
        automaton = machine._automaton
        initial = automaton.initialState.serialized
        states = [state.serialized for state in automaton.states()]
        transitions = [
            (state.serialized, name(symbol), new.serialized, [name(o) for o in outs])
            for state, symbol, new, outs in automaton.allTransitions()
        ]
    except AttributeError as error:
        raise RuntimeError(f"this automat cannot be drawn from here: {error}") from None
    return initial, states, transitions


def discard(outputs: Iterable[object]) -> None:
    """
    The collector of transitions whose inputs return nothing: it runs every
    output.  The compiled inputs stand in only for transitions that use it.
    """
    for _ in outputs:
        pass


def _probeClass() -> type:
    """
    A fresh small machine: two states, outputs that take none, some and all
    of their input's arguments, and one input with no transition from the
    initial state.
    """

    class Probe:
        _machine = MethodicalMachine()

        def __init__(self) -> None:
            self.did: list[tuple[object, ...]] = []

        @_machine.state(initial=True, serialized="shut")
        def shut(self) -> None:
            "Shut."

        @_machine.state(serialized="open")
        def open(self) -> None:
            "Open."

        @_machine.input()
        def push(self, who: str, how: str) -> None:
            "Pushed."

        @_machine.input()
        def pull(self) -> None:
            "Pulled."

        @_machine.output()
        def _creak(self) -> None:
            "Creak."
            self.did.append(("creak",))

        @_machine.output()
        def _greet(self, who: str) -> None:
            "Greet."
            self.did.append(("greet", who))

        @_machine.output()
        def _note(self, who: str, how: str) -> None:
            "Note."
            self.did.append(("note", who, how))

        @_machine.serializer()
        def state(self, state: str) -> str:
            return state

        shut.upon(push, enter=open, outputs=[_creak, _greet, _note], collector=discard)
        open.upon(pull, enter=shut, outputs=[_creak], collector=discard)
        open.upon(push, enter=open, outputs=[_greet], collector=discard)

    return Probe


def _probeRun(probe: Any) -> list[object]:
    """
    Drive C{probe} through a fixed run; what it did, its states on the way
    and the exception a missing transition raised.
    """
    seen: list[object] = [probe.state()]
    for step, args in [
        ("push", ("ann", "gently")),
        ("push", ("bob", "hard")),
        ("pull", ()),
        ("pull", ()),
        ("push", ("cy", "again")),
    ]:
        try:
            getattr(probe, step)(*args)
        except Exception as error:
            seen.append(type(error))
        seen.append(probe.state())
    did: list[object] = probe.did
    return seen + did


def _compiledAgrees() -> Optional[str]:
    """
    Run the probe machine on automat's inputs and on compiled ones.

    @return: C{None} if both did the same; otherwise what went wrong.
    """
    automatProbe = _probeClass()
    compiled = compileInputs(automatProbe._machine, discard)  # type: ignore[attr-defined]
    if compiled is None:
        return "its transitions could not be read"

    class CompiledProbe(automatProbe):  # type: ignore[valid-type, misc]
        pass

    try:
        compiled.install(CompiledProbe, ["push", "pull"])
        expected = _probeRun(automatProbe())
        got = _probeRun(CompiledProbe())
    except Exception as error:
        return f"the probe machine raised {error!r}"
    if got != expected:
        return "the probe machine did not do what automat does"
    return None


def installInputs(
    machineClass: type,
    machine: MethodicalMachine,
    names: Sequence[str],
    collector: Callable[..., object],
) -> Optional[CompiledInputs]:
    """
    Put compiled inputs for C{names} on C{machineClass}, if this automat is
    as expected and the probe agrees; otherwise leave automat's own, and
    say why in one log line.

    @return: what was installed, or C{None}.
    """
    if os.environ.get(FORCE_AUTOMAT, "") not in ("", "0"):
        return None
    why = _compiledAgrees()
    compiled = compileInputs(machine, collector) if why is None else None
    if compiled is not None:
        try:
            compiled.install(machineClass, names)
        except ValueError as error:
            why, compiled = str(error), None
    if compiled is None:
        _log.warn(
            "reconnect: using automat's own (slower) inputs: {why}",
            why=why or f"{machineClass.__name__} could not be compiled",
        )
    return compiled
