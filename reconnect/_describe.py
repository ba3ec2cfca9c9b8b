"""
Endpoints and the way a user writes them, both ways: a description made into
an endpoint, and an endpoint named for log lines (C{tcp:host:port} rather
than C{<TCP4ClientEndpoint object at 0x7f...>}).
"""

from __future__ import annotations

import sys
from typing import Any, cast

from twisted.internet.endpoints import clientFromString
from twisted.internet.interfaces import IStreamClientEndpoint


class TLSNotInstalled(ValueError):
    """
    A C{tls:} endpoint description, where Twisted's TLS support (pyOpenSSL)
    is not installed.
    """


def clientEndpoint(reactor: Any, description: str) -> IStreamClientEndpoint:
    """
    The client endpoint C{description} names, in Twisted's endpoint string
    syntax.

    @raise TLSNotInstalled: for a C{tls:} description without TLS support,
        saying what to install (Twisted itself fails with a C{NameError}).
    @raise ValueError: or what else Twisted's parser raises, for a bad one.
    """
    try:
        return cast(IStreamClientEndpoint, clientFromString(reactor, description))
    except (NameError, ImportError):
        raise TLSNotInstalled(
            f"{description!r} needs TLS support: pip install 'reconnect[tls]'"
        ) from None


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
        return f"{_describe(wrapped)} (wrapped, e.g. in TLS)"
    return repr(endpoint)
