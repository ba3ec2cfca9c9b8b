"""
Endpoints named the way a user writes them, for log lines: C{tcp:host:port}
rather than C{<TCP4ClientEndpoint object at 0x7f...>}.
"""

from __future__ import annotations


def describeEndpoint(endpoint: object) -> str:
    """
    A short description of C{endpoint}, in Twisted's endpoint string syntax
    for the endpoints Twisted ships (C{tcp:}, C{tcp6:}, C{unix:}, and
    C{HostnameEndpoint} as C{tcp:}), their C{repr} for any other.

    Twisted's endpoints keep their address in private attributes; if one
    is missing, the C{repr} stands in.
    """
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
        return f"{describeEndpoint(wrapped)} (wrapped, e.g. in TLS)"
    return repr(endpoint)
