"""
Checks shared by the command-line options of the SayStuff plugins: each turns
a bad value into a C{UsageError} that names the option.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from twisted.internet.endpoints import clientFromString, serverFromString
from twisted.internet.testing import MemoryReactor
from twisted.python.usage import UsageError

DEFAULT_PORT = 65432
T = TypeVar("T")


def portNumber(value: str) -> int:
    """
    A TCP port number, 1 to 65535.
    """
    try:
        port = int(value)
    except ValueError:
        raise ValueError(f"not a port number: {value!r}") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be between 1 and 65535, not {port}")
    return port


def positiveInt(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise ValueError(f"must be at least 1, not {number}")
    return number


def nonNegativeFloat(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"not a number: {value!r}") from None
    if not number >= 0 or number == float("inf"):
        raise ValueError(f"must be a finite number >= 0, not {value}")
    return number


def positiveFloat(value: str) -> float:
    number = nonNegativeFloat(value)
    if number == 0:
        raise ValueError("must be more than 0")
    return number


def named(option: str, check: Callable[[str], T]) -> Callable[[str], T]:
    """
    C{check}, with the option's name at the front of its complaint.
    """

    def checked(value: str) -> T:
        try:
            return check(value)
        except ValueError as error:
            raise ValueError(f"--{option}: {error}") from None

    return checked


def checkClientEndpoint(option: str, description: str) -> None:
    """
    @raise UsageError: if C{description} is not a client endpoint string.
    """
    try:
        clientFromString(MemoryReactor(), description)
    except Exception as error:
        raise UsageError(f"--{option}: bad endpoint {description!r}: {error}") from None


def checkServerEndpoint(option: str, description: str) -> None:
    """
    @raise UsageError: if C{description} is not a server endpoint string.
    """
    try:
        serverFromString(MemoryReactor(), description)
    except Exception as error:
        raise UsageError(f"--{option}: bad endpoint {description!r}: {error}") from None
