"""
Twisted's own test suites for C{ClientService}, C{backoffPolicy} and
C{ReconnectingClientFactory}, run unchanged against ours; and Twisted's
C{SRVConnector} suite against ours, where four tests that differ on purpose
are overridden, each saying why (L{TwistedSRVConnectorTests}).

Each suite is loaded from the installed Twisted's source into a module of
its own, and the names it tests are pointed at reconnect's classes: that is
the whole rewrite.  Its test cases are then collected here like our own.
"""

from __future__ import annotations

import importlib.util
import socket
import types
from typing import Optional

from helpers import ConnectingByName
from twisted.internet.error import ServiceNameUnknownError
from twisted.names import client, dns
from twisted.names.error import DNSNameError

import reconnect


def _againstReconnect(moduleName: str, **replacements: object) -> types.ModuleType:
    """
    Load Twisted's test module C{moduleName} afresh, with the names in
    C{replacements} bound to ours.
    """
    spec = importlib.util.find_spec(moduleName)
    assert spec is not None and spec.origin is not None, moduleName
    with open(spec.origin, encoding="utf-8") as source:
        code = compile(source.read(), spec.origin, "exec")
    module = types.ModuleType(moduleName + "_againstReconnect")
    module.__file__ = spec.origin
    exec(code, module.__dict__)
    for name, ours in replacements.items():
        assert name in module.__dict__, f"{moduleName} no longer uses {name}"
        module.__dict__[name] = ours
    return module


_internet = _againstReconnect(
    "twisted.application.test.test_internet", ClientService=reconnect.ClientService
)
_application = _againstReconnect(
    "twisted.test.test_application", backoffPolicy=reconnect.backoffPolicy
)
_factories = _againstReconnect(
    "twisted.test.test_factories",
    ReconnectingClientFactory=reconnect.ReconnectingClientFactory,
)

TwistedClientServiceTests = _internet.ClientServiceTests
TwistedBackoffPolicyTests = _application.BackoffPolicyTests
TwistedReconnectingFactoryTests = _factories.ReconnectingFactoryTests


_srvconnect = _againstReconnect(
    "twisted.names.test.test_srvconnect",
    srvconnect=types.SimpleNamespace(SRVConnector=reconnect.SRVConnector),
    # Theirs calls reactor.connectTCP(host, port) itself; ours goes through a
    # HostnameEndpoint, which needs a clock (it staggers its attempts) and a
    # resolver that leaves the name the SRV record gave as it is.
    MemoryReactor=ConnectingByName,
)


def _servicePort(name: str) -> Optional[int]:
    """
    The port the system's services database gives C{name}, if it knows it.
    """
    try:
        return socket.getservbyname(name, "tcp")
    except OSError:
        return None


class TwistedSRVConnectorTests(_srvconnect.SRVConnectorTests):  # type: ignore[misc]
    """
    Twisted's SRVConnector tests, run against ours.  Four differ, each
    overridden below with what ours does instead, and why.
    """

    def _fallsBackToTheServicePort(self) -> None:
        """
        Ours falls back to the same place, but hands the reactor the port
        number rather than the service's name: each server is reached
        through a C{HostnameEndpoint}, whose port is a number, so ours looks
        the name up in the system's services database itself, as Twisted's
        C{connectTCP} does later.  (A name the database does not know fails
        the attempt with C{ServiceNameUnknownError}, as in Twisted.)
        """
        self.connector.connect()
        port = _servicePort("xmpp-server")
        if port is None:
            self.assertTrue(self.factory.reason.check(ServiceNameUnknownError))
            return
        self.assertIsNone(self.factory.reason)
        self.assertEqual(self.reactor.tcpClients.pop()[:2], ("example.org", port))

    def test_SRVNotPresent(self) -> None:
        """
        NXDOMAIN: the domain, on the service's port (see
        L{_fallsBackToTheServicePort}).
        """
        client.theResolver.failure = DNSNameError(b"example.org")
        self._fallsBackToTheServicePort()

    def test_SRVNoResult(self) -> None:
        """
        An empty answer: the domain, on the service's port.
        """
        client.theResolver.results = []
        self._fallsBackToTheServicePort()

    def test_SRVBadResult(self) -> None:
        """
        An answer with no SRV record in it: the domain, on the service's
        port.
        """
        client.theResolver.results = [
            dns.RRHeader(
                name="example.org", type=dns.CNAME, cls=dns.IN, ttl=60, payload=None
            )
        ]
        self._fallsBackToTheServicePort()

    def test_SRVNoResultUnknownServiceDefaultPort(self) -> None:
        """
        Twisted's test makes the I{lookup} fail with
        C{ServiceNameUnknownError}, which only C{connectTCP} raises, for a
        service name it cannot turn into a port; Twisted's connector catches
        it after the lookup and the connect alike, and so connects to the
        default port when the DNS lookup fails so.  Ours falls back only when
        the domain has no SRV record; a lookup that fails fails the attempt
        with its error.  What the test means holds: no record, a service
        name the database does not know, and C{defaultPort}: the domain, on
        C{defaultPort}.
        """
        self._connectWhileTheLookupFails(DNSNameError(b"example.org"))
        self.assertIsNone(self.factory.reason)
        self.assertEqual(self.reactor.tcpClients.pop()[:2], ("example.org", 5222))

        self.connector.disconnect()

        self.factory = _srvconnect.DummyFactory()
        self._connectWhileTheLookupFails(ServiceNameUnknownError())
        self.assertTrue(self.factory.reason.check(ServiceNameUnknownError))
        self.assertEqual(self.reactor.tcpClients, [])

    def _connectWhileTheLookupFails(self, failure: Exception) -> None:
        """
        Connect to a service of C{example.org} the services database does
        not know, with a C{defaultPort}, while the SRV lookup fails with
        C{failure}.
        """
        self.connector = reconnect.SRVConnector(
            self.reactor,
            "thisbetternotexist",
            "example.org",
            self.factory,
            defaultPort=5222,
        )
        client.theResolver.failure = failure
        self.connector.connect()
