"""
C{twistd saystuff-server}: the bundled line server, which answers every line
with the same line.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.python.usage import Options as _Options
from twisted.python.usage import UsageError

from ._options import DEFAULT_PORT, listening, named, portNumber
from ._server import EchoLineFactory


class Options(_Options):
    synopsis = "[--port PORT] [--interface ADDRESS]"
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
        import socket

        try:
            socket.inet_pton(socket.AF_INET, self["interface"])
        except OSError:
            raise UsageError(
                f"--interface: not an IPv4 address: {self['interface']!r}"
            ) from None


def makeService(options: Any) -> IService:
    from twisted.internet import reactor

    endpoint = TCP4ServerEndpoint(
        reactor, options["port"], interface=options["interface"]
    )
    return listening(endpoint, EchoLineFactory())
