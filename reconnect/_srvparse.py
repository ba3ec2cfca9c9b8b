"""
The C{srv:} client endpoint string: an L{SRVEndpoint} wherever Twisted takes
an endpoint description (C{clientFromString}, C{twistd saystuff
--connect}), written so::

    srv:SERVICE:DOMAIN[:protocol=tcp][:defaultPort=PORT][:stagger=SECONDS]
        [:tls=yes[:tlsHostname=NAME][:trustRoots=PATH]]
        [:nameserver=ADDRESS[:nameserverPort=PORT]]

ADDRESS is an IP address; in an endpoint string the colons of an IPv6 one
are escaped: C{nameserver=\\:\\:1}.  C{service=} and C{domain=} may be
given by name instead.  The dropin in C{twisted/plugins/reconnect_srv.py}
calls L{parseSRV} only when a C{srv:} string is parsed, so that nothing of
this is imported before.
"""

from __future__ import annotations

import ipaddress
import math
import os
from typing import Any, Optional, cast

from twisted.internet.interfaces import IResolver

from ._srv import SRVEndpoint

_OPTIONS = (
    "service",
    "domain",
    "protocol",
    "defaultPort",
    "stagger",
    "tls",
    "tlsHostname",
    "trustRoots",
    "nameserver",
    "nameserverPort",
)


def parseSRV(reactor: Any, *args: str, **kwargs: str) -> SRVEndpoint:
    """
    The L{SRVEndpoint} that C{srv:ARGS:KWARGS} describes.

    @param reactor: what the endpoint connects with, and what a
        C{nameserver=} resolver sends its queries with.
    @raise ValueError: naming the part of the description that is wrong.
    """
    options = dict(kwargs)
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise ValueError(
            f"srv: does not take {', '.join(unknown)} (it takes {', '.join(_OPTIONS)})"
        )
    positional = list(args)
    for name in ("service", "domain"):
        if name not in options and positional:
            options[name] = positional.pop(0)
    if positional:
        hint = (
            r" (an IPv6 nameserver= has its colons escaped: nameserver=\:\:1)"
            if options.get("nameserver") == ""
            else ""
        )
        raise ValueError(
            f"srv: takes SERVICE:DOMAIN, then name=value options, not {args!r}{hint}"
        )
    missing = [name for name in ("service", "domain") if not options.get(name)]
    if missing:
        raise ValueError(
            f"srv: needs a {' and a '.join(missing)}, as in srv:xmpp-client:example.com"
        )
    defaultPort = _port("defaultPort", options.get("defaultPort"))
    stagger = _seconds("stagger", options.get("stagger", "0.25"))
    tls = _yesNo("tls", options.get("tls", "no"))
    if not tls and ("tlsHostname" in options or "trustRoots" in options):
        raise ValueError("srv: tlsHostname= and trustRoots= need tls=yes")
    if "tlsHostname" in options and not options["tlsHostname"]:
        raise ValueError("srv: tlsHostname= must name a host")
    if "nameserverPort" in options and "nameserver" not in options:
        raise ValueError("srv: nameserverPort= needs nameserver=")
    domain = options["domain"]
    resolver = _resolver(reactor, options)
    tlsOptions = (
        _tlsOptions(options.get("tlsHostname", domain), options.get("trustRoots"))
        if tls
        else None
    )
    try:
        return SRVEndpoint(
            reactor,
            options["service"],
            domain,
            protocol=options.get("protocol", "tcp"),
            defaultPort=defaultPort,
            stagger=stagger,
            resolver=resolver,
            tlsOptions=tlsOptions,
        )
    except (TypeError, ValueError) as e:
        raise ValueError(f"srv: {e}") from None


def _port(name: str, value: Optional[str]) -> Optional[int]:
    if value is None:
        return None
    try:
        port = int(value)
    except ValueError:
        raise ValueError(f"srv: {name}= must be a port number, not {value!r}") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"srv: {name}= must be between 1 and 65535, not {port}")
    return port


def _seconds(name: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(
            f"srv: {name}= must be a number of seconds, not {value!r}"
        ) from None
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"srv: {name}= must be a finite number >= 0, not {value!r}")
    return seconds


def _yesNo(name: str, value: str) -> bool:
    if value.lower() in ("yes", "true", "1"):
        return True
    if value.lower() in ("no", "false", "0"):
        return False
    raise ValueError(f"srv: {name}= must be yes or no, not {value!r}")


def _resolver(reactor: Any, options: dict[str, str]) -> Optional[IResolver]:
    """
    A resolver that asks C{nameserver=} (a local Consul agent, say), or
    C{None} for Twisted's default one.
    """
    address = options.get("nameserver")
    if address is None:
        return None
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(
            "srv: nameserver= must be an address (an IPv6 one with its colons "
            rf"escaped, as in nameserver=\:\:1), not {address!r}"
        ) from None
    port = _port("nameserverPort", options.get("nameserverPort", "53"))
    from twisted.names import client

    return cast(
        IResolver,
        client.Resolver(servers=[(address, port)], reactor=reactor),  # type: ignore[no-untyped-call]
    )


def _tlsOptions(hostname: str, trustRoots: Optional[str]) -> Any:
    """
    TLS options that check the server's certificate for C{hostname},
    against the system's trust store or the certificates at C{trustRoots}
    (a PEM file, or a directory of C{.pem} and C{.crt} files).

    @raise ValueError: without TLS support, or for unreadable C{trustRoots}.
    """
    try:
        from OpenSSL.crypto import Error as OpenSSLError
        from twisted.internet import ssl
    except ImportError:
        raise ValueError(
            "srv: tls=yes needs TLS support: pip install 'reconnect[tls]'"
        ) from None
    try:
        hostname.encode("idna")
    except UnicodeError as e:
        raise ValueError(
            f"srv: tlsHostname={hostname!r} is not a host name: {e}"
        ) from None
    if trustRoots is None:
        return ssl.optionsForClientTLS(hostname)
    if os.path.isdir(trustRoots):
        paths = [
            os.path.join(trustRoots, name)
            for name in sorted(os.listdir(trustRoots))
            if name.endswith((".pem", ".crt"))
        ]
    else:
        paths = [trustRoots]
    certificates = []
    for path in paths:
        try:
            with open(path, "rb") as pem:
                certificates.append(ssl.Certificate.loadPEM(pem.read()))
        except (OSError, ValueError, OpenSSLError) as e:
            raise ValueError(
                f"srv: trustRoots={path!r} is not a PEM certificate: {e}"
            ) from None
    if not certificates:
        raise ValueError(f"srv: trustRoots={trustRoots!r} holds no .pem or .crt file")
    return ssl.optionsForClientTLS(
        hostname,
        trustRoot=ssl.trustRootFromCertificates(certificates),
    )
