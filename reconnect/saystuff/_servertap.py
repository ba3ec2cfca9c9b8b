"""
C{twistd saystuff-server}: the bundled line server, which answers every line
with the same line.
"""

from __future__ import annotations

import socket
from typing import Any, Optional

from twisted.application.service import IService
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.python.usage import UsageError

from ._options import DEFAULT_PORT, ExitingOptions, listening, named, portNumber
from ._server import EchoLineFactory


def addressFamily(address: str) -> Optional[str]:
    """
    C{"IPv4"} or C{"IPv6"}, whichever C{address} is written in, or C{None}.
    """
    for family, name in ((socket.AF_INET, "IPv4"), (socket.AF_INET6, "IPv6")):
        try:
            socket.inet_pton(family, address)
        except OSError:
            continue
        return name
    return None


class Options(ExitingOptions):
    # README's synopsis is this one (tests/test_plugins.py).
    synopsis = f"[--port {DEFAULT_PORT}] [--interface 127.0.0.1]"
    longdesc = "A line server: every CRLF-terminated line is answered with itself."
    optParameters = [
        [
            "port",
            "p",
            DEFAULT_PORT,
            "The port to listen on.",
            named("port", portNumber),
        ],
        ["interface", "i", "127.0.0.1", "The address to listen on."],
    ]

    def postOptions(self) -> None:
        if addressFamily(self["interface"]) is None:
            raise UsageError(
                f"--interface: not an IPv4 or IPv6 address: {self['interface']!r}"
            )


def makeService(options: Any) -> IService:
    from twisted.internet import reactor

    interface = options["interface"]
    endpoint: IStreamServerEndpoint
    if addressFamily(interface) == "IPv6":
        endpoint = TCP6ServerEndpoint(reactor, options["port"], interface=interface)
    else:
        endpoint = TCP4ServerEndpoint(reactor, options["port"], interface=interface)
    return listening(endpoint, EchoLineFactory(), f"--port {options['port']}")
