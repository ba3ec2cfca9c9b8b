"""
C{twistd saystuff-server}: the bundled line server, which answers every line
with the same line.
"""

from __future__ import annotations

import socket
from typing import Any, Optional

from twisted.application.service import IService
from twisted.internet.endpoints import (
    SSL4ServerEndpoint,
    TCP4ServerEndpoint,
    TCP6ServerEndpoint,
)
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
    synopsis = (
        f"[--port {DEFAULT_PORT}] [--interface 127.0.0.1]"
        " [--tls-cert PEM] [--tls-key PEM]"
    )
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
        [
            "tls-cert",
            None,
            None,
            "Serve TLS with the certificate in this PEM file (which may hold"
            " the key too).",
        ],
        [
            "tls-key",
            None,
            None,
            "The PEM file of --tls-cert's private key, if not in that file.",
        ],
    ]

    def postOptions(self) -> None:
        if addressFamily(self["interface"]) is None:
            raise UsageError(
                f"--interface: not an IPv4 or IPv6 address: {self['interface']!r}"
            )
        if self["tls-key"] is not None and self["tls-cert"] is None:
            raise UsageError("--tls-key: needs --tls-cert")
        self["tls"] = None
        if self["tls-cert"] is not None:
            self["tls"] = serverCertificate(self["tls-cert"], self["tls-key"])


def serverCertificate(certificatePath: str, keyPath: Optional[str]) -> Any:
    """
    The C{PrivateCertificate} in the PEM files given, or a C{UsageError}
    that names the option at fault.
    """
    try:
        from twisted.internet.ssl import PrivateCertificate
    except ImportError as e:
        raise UsageError(
            f"--tls-cert: TLS needs pyOpenSSL ({e}); pip install 'reconnect[tls]'"
        ) from None
    pem = b""
    for option, path in (("--tls-cert", certificatePath), ("--tls-key", keyPath)):
        if path is None:
            continue
        try:
            with open(path, "rb") as f:
                pem += f.read() + b"\n"
        except OSError as e:
            raise UsageError(f"{option}: cannot read {path!r}: {e.strerror}") from None
    try:
        return PrivateCertificate.loadPEM(pem)
    except Exception as e:
        which = "--tls-key" if keyPath is not None else "--tls-cert"
        raise UsageError(
            f"{which}: no certificate and matching private key in"
            f" {certificatePath!r}{'' if keyPath is None else ' and ' + repr(keyPath)}:"
            f" {e}"
        ) from None


def makeService(options: Any) -> IService:
    from twisted.internet import reactor

    interface = options["interface"]
    port = options["port"]
    certificate = options.get("tls")
    endpoint: IStreamServerEndpoint
    if certificate is not None:
        # Either address family: the reactor's TLS port takes both.
        endpoint = SSL4ServerEndpoint(
            reactor, port, certificate.options(), interface=interface
        )
    elif addressFamily(interface) == "IPv6":
        endpoint = TCP6ServerEndpoint(reactor, port, interface=interface)
    else:
        endpoint = TCP4ServerEndpoint(reactor, port, interface=interface)
    return listening(endpoint, EchoLineFactory(), f"--port {options['port']}")
