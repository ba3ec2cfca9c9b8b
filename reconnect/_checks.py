"""
Checks of the arguments our constructors and methods take: a bad one is a
C{TypeError} or C{ValueError} at the call, naming it, rather than a service
that fails later for a reason nobody can see.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional


def isFinite(value: float) -> bool:
    """
    Whether the number C{value} is finite: an C{int} too large for a
    C{float} counts as infinite, rather than raising C{OverflowError}.
    """
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def checkCallables(**callables: object) -> None:
    """
    Check that each argument is C{None} or callable.

    @raise TypeError: naming the first that is neither.
    """
    for name, value in callables.items():
        if value is not None and not callable(value):
            raise TypeError(f"{name} must be callable or None, not {value!r}")


def checkSeconds(name: str, value: Optional[float], zeroAllowed: bool) -> None:
    """
    Check an optional duration: C{None}, or a finite number of seconds
    above 0 (or at least 0 if C{zeroAllowed}).

    @raise TypeError: if C{value} is not a number.
    @raise ValueError: if it is out of range; both name the argument.
    """
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}")
    inRange = value >= 0 if zeroAllowed else value > 0
    if not (inRange and isFinite(value)):
        least = ">= 0" if zeroAllowed else "> 0"
        raise ValueError(f"{name} must be a finite number {least}, not {value!r}")


def checkCount(name: str, value: int, least: int) -> None:
    """
    Check a whole number argument.

    @raise TypeError: if C{value} is not an C{int}.
    @raise ValueError: if it is less than C{least}; both name the argument.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < least:
        raise ValueError(f"{name} must be >= {least}, not {value!r}")


def checkEndpoint(name: str, value: object) -> None:
    """
    Check that C{value} can be connected with: it has a C{connect} method
    (an C{IStreamClientEndpoint}, declared or not).

    @raise TypeError: naming the argument, if it has none.
    """
    if not callable(getattr(value, "connect", None)):
        raise TypeError(
            f"{name} must be a client endpoint or its description, not {value!r}"
        )


def checkFactory(name: str, value: object) -> None:
    """
    Check that C{value} can build protocols: it has a C{buildProtocol}
    method (an C{IProtocolFactory}, declared or not).

    @raise TypeError: naming the argument, if it has none, or if it is a
        factory class rather than an instance (its C{buildProtocol} would
        fail at every attempt, for ever).
    """
    if isinstance(value, type):
        raise TypeError(
            f"{name} must be a protocol factory instance, not the class "
            f"{value.__qualname__}: pass {value.__qualname__}() instead"
        )
    if not callable(getattr(value, "buildProtocol", None)):
        raise TypeError(f"{name} must be a protocol factory, not {value!r}")


def checkClock(name: str, value: object) -> None:
    """
    Check that C{value} is C{None} or can schedule calls: it has the
    C{callLater} and C{seconds} of an C{IReactorTime}.

    @raise TypeError: naming the argument, if it lacks either.
    """
    if value is None:
        return
    for method in ("callLater", "seconds"):
        if not callable(getattr(value, method, None)):
            raise TypeError(
                f"{name} must be an IReactorTime (a reactor or a "
                f"task.Clock) or None, not {value!r}"
            )


def checkNumber(name: str, value: object) -> None:
    """
    Check that C{value} is a real number (an C{int}, a C{float}, or any
    other C{numbers.Real}; not a C{bool}), before it is compared or used in
    arithmetic that would fail with a message naming no argument.

    @raise TypeError: naming the argument, if it is not.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, not {value!r}")


def checkCallable(name: str, value: object) -> None:
    """
    Check that C{value} is callable (C{None} is not).

    @raise TypeError: naming the argument, if it is not.
    """
    if not callable(value):
        raise TypeError(f"{name} must be callable, not {value!r}")
