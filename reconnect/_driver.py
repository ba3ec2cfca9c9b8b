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
which behave the same, only slower, and says so in one log line, naming
the input or argument that stopped it.  Setting the environment variable
C{RECONNECT_AUTOMAT_INPUTS} to anything but C{0}, C{false}, C{no}, C{off}
or nothing does the same on purpose.

Compiled inputs call no tracer of automat's: C{setTrace} on an instance
that runs on them raises a C{RuntimeError} saying so, rather than set a
tracer that would never be called.  Tracing needs automat's own inputs.
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

# The values of FORCE_AUTOMAT that leave the compiled inputs on.
_OFF = frozenset({"", "0", "false", "no", "off"})

NO_TRACING = (
    "reconnect's compiled inputs call no tracer of automat's; set the"
    " environment variable RECONNECT_AUTOMAT_INPUTS=1 before importing"
    " reconnect to trace its machine"
)

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


class _NoTransitioner:
    """
    automat's slot for an instance's transitioner, on a class that runs on
    compiled inputs: always empty, and it takes no transitioner, saying why.
    """

    def __get__(self, instance: object, owner: Optional[type] = None) -> object:
        if instance is None:
            return self
        raise AttributeError("compiled inputs keep no transitioner")

    def __set__(self, instance: object, value: object) -> None:
        raise RuntimeError(NO_TRACING)

    def __delete__(self, instance: object) -> None:
        raise AttributeError("compiled inputs keep no transitioner")


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
        automatSlot: str,
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
        self._automatSlot: str = automatSlot
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
        is kept here cannot be handed to automat's own inputs.  The slot in
        which automat keeps an instance's transitioner is replaced too, by
        one that stays empty and refuses a transitioner (L{NO_TRACING}): a
        transitioner made for an instance on compiled inputs, as
        C{setTrace} makes one, would never be used.  (A class laid out with
        a C{__dict__}, for an automat that keeps its transitioners where
        L{stateSlots} cannot tell, has no such slot to guard.)  What was
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
        new: dict[str, object] = {
            name: self._carryingOut(self._inputs[name]) for name in names
        }
        new[serializer] = self._readingState()
        slot = self._automatSlot
        for cls in machineClass.__mro__:
            if slot in vars(cls):
                replaced[slot] = vars(cls)[slot]
                new[slot] = _NoTransitioner()
                break
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


def _unusualArgument(spec: Any) -> Optional[str]:
    """
    The first argument in C{spec} that compiled inputs do not take (a
    default, keyword-only, C{*} or C{**} one), as words; C{None} if none.
    """
    if spec.defaults:
        return f"argument {spec.args[-len(spec.defaults)]} has a default"
    if spec.kwonlyargs:
        return f"argument {spec.kwonlyargs[0]} is keyword-only"
    if spec.varargs:
        return f"it takes *{spec.varargs}"
    if spec.varkw:
        return f"it takes **{spec.varkw}"
    return None


def _documented() -> None:
    "Only a docstring."


def _bare() -> None:
    pass


def _withoutDocstring(method: Callable[..., object]) -> tuple[bytes, list[object]]:
    code = method.__code__
    return code.co_code, [c for c in code.co_consts if c is not method.__doc__]


# What a function that does nothing compiles to, with a docstring or not.
_EMPTY_BODIES = [_withoutDocstring(_documented), _withoutDocstring(_bare)]


def _emptyBody(method: Callable[..., object]) -> bool:
    """
    Whether C{method}'s body does nothing: a docstring, C{pass} or C{...}.
    automat calls an input's body at every call; a compiled input calls it
    only to check arguments it cannot take by position, so it stands in
    only for inputs whose bodies do nothing.
    """
    try:
        return _withoutDocstring(method) in _EMPTY_BODIES
    except AttributeError:
        return False


def compileInputs(
    machine: MethodicalMachine, collector: Callable[..., object]
) -> Optional[CompiledInputs]:
    """
    Read C{machine}'s transitions into a table.

    @param collector: the collector of every transition: the compiled inputs
        run the outputs and return nothing, so they stand in only for
        transitions whose collector discards the outputs' results.
    @return: the table, or C{None} for any reason L{whyNotCompiled} gives.
    """
    compiled = _compiling(machine, collector)
    return compiled if isinstance(compiled, CompiledInputs) else None


def whyNotCompiled(
    machine: MethodicalMachine, collector: Callable[..., object]
) -> Optional[str]:
    """
    Why C{machine}'s transitions cannot be compiled, naming the input or
    output and the argument; C{None} if they can.

    They cannot be if this automat does not keep its transitions as
    expected, if a transition has another collector than C{collector}, if
    an input's body does something, if an input or an output has default,
    keyword-only, C{*} or C{**} arguments, or if an output takes other
    than a leading run of its input's arguments.
    """
    compiled = _compiling(machine, collector)
    return None if isinstance(compiled, CompiledInputs) else compiled


def _compiling(
    machine: MethodicalMachine, collector: Callable[..., object]
) -> CompiledInputs | str:
    """
    C{machine}'s transitions as a table, or why not (see L{whyNotCompiled}).
    """
    try:
        inputs: dict[str, object] = {}
        table: Transitions = {}
        for state, symbol, newState, outputs in machine._automaton.allTransitions():
            input = f"input {symbol.method.__name__}"
            unusual = _unusualArgument(symbol.argSpec)
            if unusual is not None:
                return f"{input}: {unusual}"
            if not _emptyBody(symbol.method):
                return f"the body of {input} does something"
            inputArgs = tuple(symbol.argSpec.args[1:])
            if symbol.collectors[state] is not collector:
                return f"{input} in state {state.serialized} has another collector"
            inputs[symbol.method.__name__] = symbol
            steps = []
            for output in outputs:
                name = f"output {output.method.__name__} of {input}"
                unusual = _unusualArgument(output.argSpec)
                if unusual is not None:
                    return f"{name}: {unusual}"
                outputArgs = tuple(output.argSpec.args[1:])
                if inputArgs[: len(outputArgs)] != outputArgs:
                    return (
                        f"{name} takes arguments {list(outputArgs)}, not a"
                        f" leading run of the input's {list(inputArgs)}"
                    )
                steps.append((output.method, len(outputArgs)))
            table[state, symbol] = (newState, tuple(steps))
        initial = machine._automaton.initialState
        names = [state.serialized for state in machine._automaton.states()]
        if not all(isinstance(name, str) for name in names):
            return "a state's serialized name is not a string"
        if len(set(names)) != len(names):
            return "two states have the same serialized name"
        automatSlot = machine._symbol
        if not isinstance(automatSlot, str):
            return "automat's slot for the transitioner is not named by a string"
        return CompiledInputs(inputs, table, initial, automatSlot)
    except Exception as error:
        return f"its transitions could not be read: {error!r}"


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
    if this automat is as expected, the probe agrees and the machine can be
    compiled; otherwise leave automat's own, and say why in one log line,
    naming the input or argument at fault.  Nothing it meets escapes.
    C{RECONNECT_AUTOMAT_INPUTS} set to anything but C{0}, C{false}, C{no},
    C{off} (in any case) or nothing leaves automat's own quietly.

    @return: what was installed, or C{None}.
    """
    if os.environ.get(FORCE_AUTOMAT, "").strip().lower() not in _OFF:
        return None
    compiled: CompiledInputs | str | None = None
    try:
        why = _compiledAgrees()
        if why is None:
            compiled = _compiling(machine, collector)
            if isinstance(compiled, str):
                why = f"{machineClass.__name__} could not be compiled: {compiled}"
            else:
                compiled.install(machineClass, declaredInputs(machineClass, machine))
                return compiled
    except Exception as error:
        why = f"{machineClass.__name__} could not be compiled: {error!r}"
    _log.warn("reconnect: using automat's own (slower) inputs: {why}", why=why)
    return None
