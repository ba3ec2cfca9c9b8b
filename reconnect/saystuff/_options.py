"""
Checks shared by the command-line options of the SayStuff plugins: each turns
a bad value into a C{UsageError} that names the option.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Optional, TypeVar, cast

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IHostnameResolver,
    IProtocolFactory,
    IReactorPluggableNameResolver,
    IStreamServerEndpoint,
)
from twisted.python.usage import Options as _Options
from twisted.python.usage import UsageError
from zope.interface import implementer

from .._describe import TLSNotInstalled, clientEndpoint, parseFailure

DEFAULT_PORT = 65432


@implementer(IReactorPluggableNameResolver)
class _ParsingOnly:
    """
    What the endpoint parsers are handed while options are checked: they
    only keep their reactor, and the real one must not be imported yet
    (C{twistd --reactor=...} installs it later).  It resolves names as the
    default resolver would, so that no endpoint warns of a missing one.
    """

    nameResolver: Optional[IHostnameResolver] = None

    def installNameResolver(self, resolver: IHostnameResolver) -> IHostnameResolver:
        previous, self.nameResolver = self.nameResolver, resolver
        return cast(IHostnameResolver, previous)


_NO_REACTOR = _ParsingOnly()
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
    return floatAbove(value, 0, orEqual=False)


def factorFloat(value: str) -> float:
    return floatAbove(value, 1, orEqual=True)


def floatAbove(value: str, least: float, orEqual: bool) -> float:
    """
    C{value} as a finite number above C{least} (or equal to it if
    C{orEqual}): one message for every number out of that range.
    """
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"not a number: {value!r}") from None
    inRange = number >= least if orEqual else number > least
    if not (inRange and number != float("inf")):
        rule = f">= {least}" if orEqual else f"> {least}"
        raise ValueError(f"must be a finite number {rule}, not {value}")
    return number


class ExitingOptions(_Options):
    """
    Options whose usage error under C{twistd} ends the process with status 1
    on every Twisted we support: before Twisted 26.10, C{twistd} printed the
    usage message and exited with 0.  Outside C{twistd} (no parent options),
    the C{UsageError} is raised as usual.
    """

    def parseOptions(self, options: Optional[Sequence[str]] = None) -> None:
        try:
            super().parseOptions(options)  # type: ignore[no-untyped-call]
        except UsageError as error:
            parent = getattr(self, "parent", None)
            if not isinstance(parent, _Options):
                raise
            print(self)
            print(f"twistd {parent.subCommand}: {error}")
            raise SystemExit(1) from None


def listening(
    endpoint: IStreamServerEndpoint, factory: IProtocolFactory, option: str
) -> IService:
    """
    A service that listens on C{endpoint}, and whose failure to listen
    ends C{twistd} at start-up (exit status 1, one line on standard error
    that names C{option}, the command-line option that asked for it)
    instead of leaving a process that listens nowhere.  It asks for the
    failure at once as Twisted's own C{strports.service} does, through the
    same attribute.
    """
    service = _ListeningService(endpoint, factory)  # type: ignore[no-untyped-call]
    service.option = option
    return service


class _ListeningService(StreamServerEndpointService):
    """
    Listens at start-up or ends the program with one line that says why.

    @ivar option: the option that asked for this endpoint, as the user
        wrote it (C{"--listen"}), to name in that line.
    """

    _raiseSynchronously = True
    option = ""

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()  # type: ignore[no-untyped-call]
        except CannotListenError as error:
            raise SystemExit(f"error: {self.option}: {error}") from None


F = TypeVar("F", bound=Callable[..., object])


def oneLineHelp(method: F) -> F:
    """
    Fold the docstring of an C{opt_} method, which C{--help} shows, into
    one line: C{usage.Options} keeps its line breaks and indentation as
    runs of spaces.
    """
    method.__doc__ = " ".join((method.__doc__ or "").split())
    return method


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
        endpoint = clientEndpoint(_NO_REACTOR, description, f"--{option}")
    except TLSNotInstalled as error:
        raise UsageError(f"--{option}: {error}") from None
    except ValueError as error:
        raise UsageError(str(error)) from None
    checkPortOf(option, description, endpoint, least=1)


def checkServerEndpoint(option: str, description: str) -> None:
    """
    @raise UsageError: if C{description} is not a server endpoint string.
    """
    try:
        endpoint = serverFromString(_NO_REACTOR, description)
    except Exception as error:
        raise UsageError(
            f"--{option}: bad endpoint {description!r}: {parseFailure(error)}"
        ) from None
    checkPortOf(option, description, endpoint, least=0)


def checkPortOf(option: str, description: str, endpoint: object, least: int) -> None:
    """
    Twisted's TCP endpoints take any integer as a port: refuse those that
    are not one.

    @raise UsageError: if C{endpoint} has a TCP port out of range.
    """
    port = getattr(endpoint, "_port", None)
    if isinstance(port, int) and not least <= port <= 65535:
        raise UsageError(
            f"--{option}: bad endpoint {description!r}: "
            f"port must be between {least} and 65535, not {port}"
        )
