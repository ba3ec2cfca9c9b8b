"""
Prometheus metrics for reconnect's services (needs C{prometheus-client}:
C{pip install 'reconnect[metrics]'})::

    from prometheus_client import REGISTRY
    from reconnect.prometheus import ServiceCollector

    REGISTRY.register(ServiceCollector({"upstream": service}))

or serve them over HTTP on their own, as C{twistd saystuff --metrics} does:
C{metricsSite({"upstream": service})} is a C{twisted.web} site for a
server endpoint.

Every metric has a C{service} label with the name it was registered under.
The values are read when Prometheus scrapes: nothing is counted twice and
nothing runs between scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Optional, Union, cast

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from twisted.internet.interfaces import IAddress, IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from ._driver import transitionsOf
from ._failover import FailoverEndpoint
from ._machine import _ClientMachine
from ._refusals import RefusalLog
from ._service import ClientService


def _stateNames() -> tuple[str, ...]:
    """
    The states of L{ClientService}'s machine, the initial one first, read
    from the machine itself as the drawing in C{docs/} is: a state added to
    the machine gets its C{reconnect_state} series with no change here.
    """
    initial, states, _ = transitionsOf(_ClientMachine._machine)
    return (initial, *sorted(set(states) - {initial}))


_STATES = _stateNames()

METRICS_MAX_CONNECTIONS = 16
"""
The most connections L{metricsSite} serves at once; more are closed as they
connect.
"""

METRICS_CONNECTION_TIMEOUT = 10.0
"""
Seconds a connection to L{metricsSite} may stay open, whatever it does.
"""

Watched = Union[ClientService, Any]


class ServiceCollector(Collector):
    """
    Collects the counters and gauges of L{ClientService}s and of
    L{SayStuffToServerService <reconnect.saystuff.SayStuffToServerService>}s
    (which add their request counts).
    """

    def __init__(self, services: Mapping[str, Watched]) -> None:
        """
        @param services: the services to watch, by the name their metrics
            carry in the C{service} label.
        """
        self._services = dict(services)

    def collect(self) -> Iterator[Any]:
        labels = ["service"]
        attempts = CounterMetricFamily(
            "reconnect_attempts", "Connection attempts started.", labels=labels
        )
        failures = CounterMetricFamily(
            "reconnect_failures", "Connection attempts that failed.", labels=labels
        )
        connects = CounterMetricFamily(
            "reconnect_connects", "Connections made.", labels=labels
        )
        disconnects = CounterMetricFamily(
            "reconnect_disconnects",
            "Established connections that ended.",
            labels=labels,
        )
        connected = GaugeMetricFamily(
            "reconnect_connected", "1 while a connection is up.", labels=labels
        )
        secondsConnected = CounterMetricFamily(
            "reconnect_connected_seconds",
            "Seconds spent connected, over all connections.",
            labels=labels,
        )
        state = GaugeMetricFamily(
            "reconnect_state",
            "1 for the state the service is in, 0 for the others.",
            labels=["service", "state"],
        )
        queued = GaugeMetricFamily(
            "saystuff_queued_requests",
            "Requests waiting for a connection.",
            labels=labels,
        )
        inFlight = GaugeMetricFamily(
            "saystuff_in_flight_requests",
            "Requests written and not yet answered.",
            labels=labels,
        )
        answered = CounterMetricFamily(
            "saystuff_answered_requests", "Requests answered.", labels=labels
        )
        failed = CounterMetricFamily(
            "saystuff_failed_requests", "Requests that failed.", labels=labels
        )
        for name, service in self._services.items():
            client = getattr(service, "clientService", service)
            stats = client.stats()
            attempts.add_metric([name], stats.attempts)
            failures.add_metric([name], stats.failures)
            connects.add_metric([name], stats.connects)
            disconnects.add_metric([name], stats.disconnects)
            connected.add_metric([name], int(stats.connected))
            secondsConnected.add_metric([name], stats.secondsConnected)
            for each in _STATES:
                state.add_metric([name, each], int(stats.state == each))
            if client is not service:
                status = cast(Any, service).status()
                queued.add_metric([name], status["queued"])
                inFlight.add_metric([name], status["inFlight"])
                answered.add_metric([name], status["answered"])
                failed.add_metric([name], status["failed"])
        yield from (attempts, failures, connects, disconnects, connected)
        yield from (secondsConnected, state, queued, inFlight, answered, failed)
        yield from _failoverFamilies(self._services)


def _failoverFamilies(services: Mapping[str, Watched]) -> Iterator[Any]:
    """
    The health of each endpoint of the services that connect through a
    L{FailoverEndpoint}, labelled with the service and the endpoint.
    """
    endpointLabels = ["service", "endpoint"]
    endpointCurrent = GaugeMetricFamily(
        "reconnect_endpoint_current",
        "1 for the endpoint of a failover endpoint the last connection went through.",
        labels=endpointLabels,
    )
    endpointInARow = GaugeMetricFamily(
        "reconnect_endpoint_failures_in_a_row",
        "Failed attempts through the endpoint since its last success.",
        labels=endpointLabels,
    )
    endpointCooling = GaugeMetricFamily(
        "reconnect_endpoint_cooling",
        "1 while the endpoint is tried after the others.",
        labels=endpointLabels,
    )
    endpointConnects = CounterMetricFamily(
        "reconnect_endpoint_connects",
        "Connections made through the endpoint.",
        labels=endpointLabels,
    )
    endpointFailures = CounterMetricFamily(
        "reconnect_endpoint_failures",
        "Failed attempts through the endpoint.",
        labels=endpointLabels,
    )
    for name, service in services.items():
        client = getattr(service, "clientService", service)
        endpoint = client.endpoint
        if isinstance(endpoint, FailoverEndpoint):
            now = endpoint.clock.seconds()
            for health in endpoint.health():
                where = [name, health.description]
                cooling = health.coolingUntil is not None and now < health.coolingUntil
                endpointCurrent.add_metric(where, int(health.current))
                endpointInARow.add_metric(where, health.failuresInARow)
                endpointCooling.add_metric(where, int(cooling))
                endpointConnects.add_metric(where, health.connects)
                endpointFailures.add_metric(where, health.failures)
    yield from (endpointCurrent, endpointInARow, endpointCooling)
    yield from (endpointConnects, endpointFailures)


def metricsSite(
    services: Mapping[str, Watched],
    maxConnections: int = METRICS_MAX_CONNECTIONS,
    connectionTimeout: float = METRICS_CONNECTION_TIMEOUT,
    reactor: Any = None,
) -> Site:
    """
    A C{twisted.web} site that serves L{metricsResource} to C{GET} and
    C{HEAD}, and that no client can make hold much:
        - it reads no request body: a request that announces one
          (C{Content-Length} over 0, or C{Transfer-Encoding}) is answered
          413 and its connection closed as soon as its headers are in,
          before any of the body is read (Twisted's own site reads the
          body whole, into a temporary file past 100 kB, before the
          resource sees the request);
        - it answers one request per connection (with C{Connection:
          close}) and reads nothing after it: pipelined requests are
          dropped, not queued behind answers their client does not read;
        - it serves at most C{maxConnections} connections at once (more
          are closed as they connect, logged at most once a minute), and
          closes each C{connectionTimeout} seconds after it opened.
    The resource answers any other method than C{GET} and C{HEAD} 405.
    """
    site = _CappedSite(metricsResource(services), reactor=reactor)
    site.maxConnections = maxConnections
    site.connectionTimeout = connectionTimeout
    site.protocol = _BodilessHTTPChannel  # type: ignore[assignment]
    return site


class _CappedSite(Site):
    """
    A site that serves at most C{maxConnections} connections at once and
    gives each C{connectionTimeout} seconds.

    @ivar refused: connections closed as they connected, over the cap.
    """

    _log = Logger()
    maxConnections = METRICS_MAX_CONNECTIONS
    connectionTimeout = METRICS_CONNECTION_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self.open: set[_BodilessHTTPChannel] = set()
        self.refused = 0
        self._refusals = RefusalLog(self.reactor, self._logRefusals)

    def buildProtocol(self, addr: Optional[IAddress]) -> Any:
        if len(self.open) < self.maxConnections:
            return super().buildProtocol(addr)  # type: ignore[no-untyped-call]
        self.refused += 1
        self._refusals.refused()
        return None

    def _logRefusals(self, count: int) -> None:
        self._log.warn(
            "Refused {count} metrics connection(s): {limit} are open, the limit",
            count=count,
            limit=self.maxConnections,
        )

    def stopFactory(self) -> None:
        self._refusals.flush()
        super().stopFactory()


class _BodilessHTTPChannel(HTTPChannel):
    """
    An HTTP channel for one request without a body: it refuses a request
    with a body once its headers are in, answers the first request with
    C{Connection: close}, and reads nothing more from the connection after
    that request's headers.  It closes the connection once the site's
    C{connectionTimeout} is up.
    """

    _requestSeen = False
    _deadline: Optional[IDelayedCall] = None

    def connectionMade(self) -> None:
        site = self.factory
        assert isinstance(site, _CappedSite)
        site.open.add(self)
        self._deadline = site.reactor.callLater(site.connectionTimeout, self._timeIsUp)
        super().connectionMade()  # type: ignore[no-untyped-call]

    def _timeIsUp(self) -> None:
        self._deadline = None
        assert self.transport is not None
        self.transport.abortConnection()  # type: ignore[attr-defined]

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None
        site = self.factory
        assert isinstance(site, _CappedSite)
        site.open.discard(self)
        super().connectionLost(reason)  # type: ignore[no-untyped-call]

    def dataReceived(self, data: bytes) -> None:
        if not self._requestSeen:
            super().dataReceived(data)  # type: ignore[no-untyped-call]

    def lineReceived(self, line: bytes) -> None:
        if not self._requestSeen:
            super().lineReceived(line)  # type: ignore[no-untyped-call]

    def checkPersistence(self, request: Request, version: bytes) -> bool:
        request.responseHeaders.setRawHeaders(b"Connection", [b"close"])
        return False

    def allHeadersReceived(self) -> None:
        self._requestSeen = True
        request = self.requests[-1]
        if not _announcesBody(request.requestHeaders):
            super().allHeadersReceived()  # type: ignore[no-untyped-call]
            return
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 413 Request Entity Too Large\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        self.transport.loseConnection()

    def rawDataReceived(self, data: bytes) -> None:
        # Past the headers of its one request, whose body is empty (or
        # refused), whatever the client sends is not for us to keep.
        if not self._requestSeen:
            super().rawDataReceived(data)


def _announcesBody(headers: Headers) -> bool:
    """
    Whether the request headers C{headers} announce a body.
    """
    if headers.hasHeader(b"Transfer-Encoding"):
        return True
    lengths = headers.getRawHeaders(b"Content-Length") or []
    return any(length.strip() != b"0" for length in lengths)


def metricsResource(services: Mapping[str, Watched]) -> Resource:
    """
    A C{twisted.web} resource that serves the metrics of C{services} (and
    nothing else) in Prometheus' text format, to C{GET} and C{HEAD}.

    The metrics are collected in the reactor's thread, where the services
    change: C{prometheus_client}'s own Twisted resource collects them in a
    thread of the reactor's pool, while they change under it.
    """
    registry = CollectorRegistry(auto_describe=True)
    registry.register(ServiceCollector(services))
    return _MetricsResource(registry)


class _MetricsResource(Resource):
    """
    Serves a registry's metrics at every path.
    """

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._registry = registry

    def render(self, request: Request) -> bytes:
        """
        The metrics to C{GET}, their headers to C{HEAD}, 405 to the rest.
        """
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(405)
            request.setHeader(b"Allow", b"GET, HEAD")  # type: ignore[no-untyped-call]
            return b""
        body = generate_latest(self._registry)
        contentType = CONTENT_TYPE_LATEST.encode("ascii")
        request.setHeader(b"Content-Type", contentType)  # type: ignore[no-untyped-call]
        request.setHeader(b"Content-Length", b"%d" % len(body))  # type: ignore[no-untyped-call]
        return b"" if request.method == b"HEAD" else body
