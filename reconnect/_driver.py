"""
A faster way to feed inputs to a C{MethodicalMachine}, with the same table.

automat declares, checks, draws and serializes our machine; this module only
changes how an input is carried out.  For each input automat builds a new
wrapper at every attribute access, finds the transition by comparing the
current state and the input with every transition of the machine, and works
out again, for every output, which of the input's arguments it takes.  That
costs more than the reconnect cycle's own bookkeeping.  L{compileInputs}
does those three things once, when the class is defined: it reads the
machine's transitions into a dict keyed by state and input, and for every
output the number of leading input arguments it takes.

It reads automat's private attributes, in one place.  If they are not what
it expects (a future automat), it returns C{None} and the machine keeps
automat's own inputs, which behave the same, only slower.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Optional

from automat import MethodicalMachine
from automat._methodical import _transitionerFromInstance

Transitions = dict[tuple[object, object], tuple[object, tuple[tuple[Any, int], ...]]]


class CompiledInputs:
    """
    The transitions of one C{MethodicalMachine}, ready for lookup.
    """

    def __init__(
        self, machine: MethodicalMachine, inputs: dict[str, Any], table: Transitions
    ) -> None:
        self._machine = machine
        self._inputs = inputs
        self._table = table

    def install(self, machineClass: type, names: Sequence[str]) -> None:
        """
        Replace each input named in C{names} on C{machineClass} with a plain
        method that carries it out.  Being plain methods, they cost nothing
        per instance.
        """
        for name in names:
            setattr(machineClass, name, self._carryingOut(self._inputs[name]))

    def _carryingOut(self, symbol: Any) -> Callable[..., None]:
        table = self._table
        machine = self._machine

        def carryOut(instance: object, *args: object) -> None:
            transitioner = _transitionerOf(machine, instance)
            found = table.get((transitioner._state, symbol))
            if found is None:
                # No such transition: automat raises its NoTransition.
                symbol.__get__(instance)(*args)
                return
            transitioner._state, outputs = found
            for method, taken in outputs:
                method(instance, *args[:taken])

        carryOut.__name__ = symbol.method.__name__
        carryOut.__doc__ = symbol.method.__doc__
        return carryOut


def _transitionerOf(machine: MethodicalMachine, instance: object) -> Any:
    transitioner = getattr(instance, machine._symbol, None)
    if transitioner is None:
        transitioner = _transitionerFromInstance(
            instance, machine._symbol, machine._automaton
        )
    return transitioner


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
        machine._symbol  # noqa: B018
        automaton = machine._automaton
        inputs: dict[str, object] = {}
        table: Transitions = {}
        for state, symbol, newState, outputs in automaton.allTransitions():
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
    except (AttributeError, KeyError, TypeError, ImportError):
        return None
    return CompiledInputs(machine, inputs, table)
