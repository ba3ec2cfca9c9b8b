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
the compiled inputs keep the name of each instance's current state in a slot
of their own (L{COMPILED_STATE}), which no code of automat's knows of.

A compiled input must be the same machine as automat's, or not be used:
inputs or outputs with default, keyword-only, C{*} or C{**} arguments are
not compiled; a compiled input checks its arguments as automat's does (by
calling the input's declared body, which raises the same C{TypeError}),
before it changes anything.

What it reads of automat is private, so nothing here may break C{import
reconnect}: every read is guarded, and before the compiled inputs are put
on a class, L{installInputs} runs a small probe machine, laid out in slots
as the real one is, through automat's inputs and through compiled ones and
compares what they did.  Any surprise (a missing name, a changed shape, a
different outcome, any exception) leaves automat's own inputs in place,
which behave the same, only slower, and says so in one log line.  Setting
the environment variable C{RECONNECT_AUTOMAT_INPUTS=1} does the same on
purpose.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Optional

from automat import MethodicalMachine, NoTransition
from twisted.logger import Logger

Transitions = dict[tuple[Any, Any], tuple[Any, tuple[tuple[Any, int], ...]]]

FORCE_AUTOMAT = "RECONNECT_AUTOMAT_INPUTS"

# Where compiled inputs keep the name of an instance's state.
COMPILED_STATE = "_compiledState"

_log = Logger(namespace="reconnect")


def discard(outputs: Iterable[object]) -> None:
    """
    The collector of transitions whose inputs return nothing: it runs every
    output.  The compiled inputs stand in only for transitions that use it.
    """
    for _ in outputs:
        pass


def transition(state: Any, input: Any, enter: Any, *outputs: Any) -> None:
    """
    Declare that C{input} in C{state} enters C{enter}, running C{outputs}
    in order; its input returns nothing.
    """
    state.upon(input, enter=enter, outputs=list(outputs), collector=discard)


def ignore(state: Any, *inputs: Any) -> None:
    """
    Declare that each of C{inputs} changes nothing in C{state}.
    """
    for input in inputs:
        state.upon(input, enter=state, outputs=[], collector=discard)


def _argsAsAutomatWould(
    method: Callable[..., object],
    instance: object,
    args: tuple[object, ...],
    kwargs: dict[str, object],
) -> tuple[object, ...]:
    """
    The input's arguments, by position, for a call that is not already so:
    the input's declared body is called first, as automat calls it, so that
    a call it would refuse raises the same C{TypeError} before anything
    changes.
    """
    method(instance, *args, **kwargs)
    return inspect.signature(method).bind(instance, *args, **kwargs).args[1:]


class CompiledInputs:
    """
    The transitions of one C{MethodicalMachine}, ready for lookup.

    Compiled inputs keep the name of each instance's current state in the
    attribute L{COMPILED_STATE}.  Names, not automat's state objects,
    because a string keeps its hash: automat's states compute theirs in
    Python, on every lookup.  automat never reads that attribute: an
    instance that meets automat's own inputs (if they are put back on the
    class) starts, for automat, from the initial state; so they are to be
    put back only before any instance is made (as the tests do, with
    L{replaced}).
    """

    def __init__(
        self,
        inputs: dict[str, Any],
        table: Transitions,
        initial: Any,
    ) -> None:
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
        per instance.  Either all are replaced or, if anything fails, none.

        Every input of the machine must be named: an instance whose state
        is kept here cannot be handed to automat's own inputs.  What was
        replaced stays in L{replaced}, by name.

        @raise ValueError: if an input of the machine is not named.
        """
        missing = set(self._inputs) - set(names)
        if missing:
            raise ValueError(f"inputs left to automat: {sorted(missing)}")
        replaced = {
            name: next(
                vars(cls)[name] for cls in machineClass.__mro__ if name in vars(cls)
            )
            for name in [*names, serializer]
        }
        new: dict[str, Callable[..., object]] = {
            name: self._carryingOut(self._inputs[name]) for name in names
        }
        new[serializer] = self._readingState()
        done: list[str] = []
        try:
            for name, method in new.items():
                setattr(machineClass, name, method)
                done.append(name)
        except BaseException:
            for name in done:
                setattr(machineClass, name, replaced[name])
            raise
        self.replaced = replaced

    def _readingState(self) -> Callable[[object], str]:
        initial: str = self._initial.serialized
        stateAttribute = COMPILED_STATE

        def state(instance: object) -> str:
            current: str = getattr(instance, stateAttribute, initial)
            return current

        state.__doc__ = "The name of the current state."
        return state

    def _carryingOut(self, symbol: Any) -> Callable[..., None]:
        table = self._byName
        states = self._states
        initial = self._initial.serialized
        declared = symbol.method
        arity = len(symbol.argSpec.args) - 1
        stateAttribute = COMPILED_STATE

        def carryOut(instance: object, *args: object, **kwargs: object) -> None:
            if kwargs or len(args) != arity:
                args = _argsAsAutomatWould(declared, instance, args, kwargs)
            current = getattr(instance, stateAttribute, initial)
            found = table.get((current, symbol))
            if found is None:
                raise NoTransition(states[current], symbol)
            new, outputs = found
            setattr(instance, stateAttribute, new)
            for method, taken in outputs:
                method(instance, *args[:taken])

        carryOut.__name__ = declared.__name__
        carryOut.__doc__ = declared.__doc__
        return carryOut


def _automatRunsInSlots() -> bool:
    """
    Whether automat's own inputs work on an instance whose class has, for
    automat, only the slot named by its machine's C{_symbol} and no
    C{__dict__}: that is, whether automat keeps each instance's state where
    that attribute says.
    """
    try:

        class Slotted:
            _machine = MethodicalMachine()
            __slots__ = (_machine._symbol,)

            @_machine.state(initial=True)
            def only(self) -> None:
                "The only state."

            @_machine.input()
            def poke(self) -> None:
                "Poked."

            ignore(only, poke)

        Slotted().poke()
    except Exception:
        return False
    return True


def stateSlots(machine: MethodicalMachine) -> tuple[str, ...]:
    """
    The C{__slots__} entries a machine class needs to keep each instance's
    state: the attribute automat uses and the one compiled inputs use; or,
    if automat keeps its state elsewhere than this module can tell, a
    C{__dict__}, so that automat's own inputs still work.
    """
    attribute = getattr(machine, "_symbol", None)
    if isinstance(attribute, str) and _automatRunsInSlots():
        return (attribute, COMPILED_STATE)
    return ("__dict__",)


def declaredInputs(machineClass: type, machine: MethodicalMachine) -> tuple[str, ...]:
    """
    The names of C{machine}'s inputs, in the order C{machineClass} declares
    them; none if automat's inputs cannot be told apart.
    """
    try:
        symbols = machine._automaton.inputAlphabet()
        return tuple(
            name for name, value in vars(machineClass).items() if value in symbols
        )
    except Exception:
        return ()


def _plainArguments(spec: Any) -> bool:
    return not (spec.varargs or spec.varkw or spec.kwonlyargs or spec.defaults)


def compileInputs(
    machine: MethodicalMachine, collector: Callable[..., object]
) -> Optional[CompiledInputs]:
    """
    Read C{machine}'s transitions into a table.

    @param collector: the collector of every transition: the compiled inputs
        run the outputs and return nothing, so they stand in only for
        transitions whose collector discards the outputs' results.
    @return: the table, or C{None} if this automat does not keep its
        transitions as expected, if a transition has another collector, if
        an input or an output has default, keyword-only, C{*} or C{**}
        arguments, or if an output takes other than a leading run of its
        input's arguments.
    """
    try:
        inputs: dict[str, object] = {}
        table: Transitions = {}
        for state, symbol, newState, outputs in machine._automaton.allTransitions():
            if not _plainArguments(symbol.argSpec):
                return None
            inputArgs = tuple(symbol.argSpec.args[1:])
            if symbol.collectors[state] is not collector:
                return None
            inputs[symbol.method.__name__] = symbol
            steps = []
            for output in outputs:
                if not _plainArguments(output.argSpec):
                    return None
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
        return CompiledInputs(inputs, table, initial)
    except Exception:
        return None


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


def _probeClass() -> type:
    """
    A fresh small machine, laid out in slots as the service's machine is:
    two states, outputs that take none, some and all of their input's
    arguments, and one input with no transition from the initial state.
    """

    class Probe:
        _machine = MethodicalMachine()
        __slots__ = ("did", *stateSlots(_machine))

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

        transition(shut, push, open, _creak, _greet, _note)
        transition(open, pull, shut, _creak)
        transition(open, push, open, _greet)

    return Probe


def _probeRun(probe: Any) -> list[object]:
    """
    Drive C{probe} through a fixed run, with calls by position and by
    keyword and calls with too few or too many arguments; what it did, its
    states on the way and the exceptions raised.
    """
    seen: list[object] = [probe.state()]
    for step, args, kwargs in [
        ("push", ("ann", "gently"), {}),
        ("push", ("bob",), {"how": "hard"}),
        ("push", ("cy",), {}),
        ("pull", ("extra",), {}),
        ("pull", (), {}),
        ("pull", (), {}),
        ("push", (), {"who": "dee", "how": "again"}),
    ]:
        try:
            getattr(probe, step)(*args, **kwargs)
        except Exception as error:
            seen.append((type(error), str(error)))
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
        __slots__ = ()

    compiled.install(CompiledProbe, ["push", "pull"])
    expected = _probeRun(automatProbe())
    got = _probeRun(CompiledProbe())
    if got != expected:
        return "the probe machine did not do what automat does"
    return None


def installInputs(
    machineClass: type,
    machine: MethodicalMachine,
    collector: Callable[..., object],
) -> Optional[CompiledInputs]:
    """
    Put compiled inputs for every input of C{machine} on C{machineClass},
    if this automat is as expected and the probe agrees; otherwise leave
    automat's own, and say why in one log line.  Nothing it meets escapes.

    @return: what was installed, or C{None}.
    """
    if os.environ.get(FORCE_AUTOMAT, "") not in ("", "0"):
        return None
    try:
        why = _compiledAgrees()
        compiled = None
        if why is None:
            compiled = compileInputs(machine, collector)
        if compiled is not None:
            compiled.install(machineClass, declaredInputs(machineClass, machine))
    except Exception as error:
        why, compiled = f"{error!r}", None
    if compiled is None:
        _log.warn(
            "reconnect: using automat's own (slower) inputs: {why}",
            why=why or f"{machineClass.__name__} could not be compiled",
        )
    return compiled
