"""
Endpoints and the way a user writes them, both ways: a description made into
an endpoint, and an endpoint named for log lines (C{tcp:host:port} rather
than C{<TCP4ClientEndpoint object at 0x7f...>}).
"""

from __future__ import annotations

import sys
from typing import Any, Optional, cast

from twisted.internet.endpoints import clientFromString
from twisted.internet.interfaces import IReactorTCP, IStreamClientEndpoint
from twisted.python.filepath import UnlistableError

from ._checks import checkEndpoint


class TLSNotInstalled(ValueError):
    """
    A C{tls:} endpoint description, where Twisted's TLS support (pyOpenSSL)
    is not installed.
    """


def clientEndpoint(
    reactor: Any, description: str, name: str = "endpoint"
) -> IStreamClientEndpoint:
    """
    The client endpoint C{description} names, in Twisted's endpoint string
    syntax: the one parser of every description we are given, so that a bad
    one is reported alike wherever it was given.

    @param name: the argument (or option) C{description} was given as, for
        the error.
    @raise TLSNotInstalled: for a C{tls:} description without TLS support,
        saying what to install (Twisted itself fails with a C{NameError}).
    @raise ValueError: for a bad one, naming C{name}, the description and
        why (whatever Twisted's parser raised, a C{TypeError} included).
    """
    try:
        return cast(IStreamClientEndpoint, clientFromString(reactor, description))
    except (NameError, ImportError):
        raise TLSNotInstalled(
            f"{description!r} needs TLS support: pip install 'reconnect[tls]'"
        ) from None
    except Exception as error:
        raise ValueError(
            f"{name} {description!r} is not a client endpoint description: "
            f"{parseFailure(error)}"
        ) from error


def endpointFrom(
    name: str, endpoint: object, clock: Optional[object]
) -> IStreamClientEndpoint:
    """
    The endpoint an argument C{name} names: C{endpoint} itself, or the
    endpoint its string description names.  A description connects through
    C{clock} if that is a reactor that can connect (it provides
    C{IReactorTCP}), else through the global reactor: a C{task.Clock} given
    to time the retries cannot connect anything.

    @raise TypeError: if C{endpoint} is neither an endpoint nor a string.
    @raise ValueError: if the description is bad; both name C{name}.
    """
    if not isinstance(endpoint, str):
        checkEndpoint(name, endpoint)
        return cast(IStreamClientEndpoint, endpoint)
    reactor: object = clock
    if not IReactorTCP.providedBy(clock):
        from twisted.internet import reactor
    return clientEndpoint(reactor, endpoint, name)


def parseFailure(error: BaseException) -> str:
    """
    Why an endpoint description could not be parsed, from what the parser
    raised: its text, or its type where the text is empty; for a path that
    could not be read (Twisted raises an C{UnlistableError} whose text is
    empty, for a C{trustRoots=} directory that is not there), that.
    """
    if isinstance(error, UnlistableError):
        cause = error.__context__
        path = getattr(cause, "filename", None)
        original = error.originalException
        reason = getattr(original, "strerror", None) or str(original)
        reason = reason or type(original).__name__
        where = f" {path!r}" if path else ""
        return f"the path{where} could not be read ({reason})"
    if isinstance(error, OSError) and error.filename:
        return f"the path {error.filename!r} could not be read ({error.strerror})"
    text = str(error)
    return text if text else type(error).__name__


def describeEndpoint(endpoint: object) -> str:
    """
    A short description of C{endpoint}, in Twisted's endpoint string syntax
    for the endpoints Twisted ships (C{tcp:}, C{tcp6:}, C{unix:}, and
    C{HostnameEndpoint} as C{tcp:}), their C{repr} for any other.

    Twisted's endpoints keep their address in private attributes; if one
    is missing, the C{repr} stands in.  The description is interned: the
    thousands of services of a fleet that go to one place share one string.
    """
    return sys.intern(_describe(endpoint))


def _describe(endpoint: object) -> str:
    kind = type(endpoint).__name__
    host = getattr(endpoint, "_hostText", None) or getattr(endpoint, "_host", None)
    port = getattr(endpoint, "_port", None)
    if host is not None and port is not None:
        if kind in ("TCP4ClientEndpoint", "HostnameEndpoint"):
            return f"tcp:{host}:{port}"
        if kind == "TCP6ClientEndpoint":
            return f"tcp6:{host}:{port}"
    path = getattr(endpoint, "_path", None)
    if kind == "UNIXClientEndpoint" and path is not None:
        return f"unix:{path}"
    wrapped = getattr(endpoint, "_wrappedEndpoint", None)
    if kind == "_WrapperEndpoint" and wrapped is not None:
        inner = _describe(wrapped)
        if _wrapsInTLS(endpoint) and inner.startswith("tcp:"):
            return "tls:" + inner[len("tcp:") :]
        return f"{inner} (wrapped, e.g. in TLS)"
    return repr(endpoint)


def _wrapsInTLS(endpoint: object) -> bool:
    """
    Whether C{endpoint}, one of Twisted's C{_WrapperEndpoint}s, is the one
    Twisted's C{wrapClientTLS} (and so a C{tls:} description) makes: its
    wrapping factory is a function defined in C{wrapClientTLS}.
    """
    wrapper = getattr(endpoint, "_wrapperFactory", None)
    qualname = getattr(wrapper, "__qualname__", "")
    return isinstance(qualname, str) and qualname.startswith("wrapClientTLS.")
