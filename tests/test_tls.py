"""
Over TLS, connected means the handshake is done: a handshake that fails is
a failed attempt, counted and paced like a refused connection, and nothing
is handed out or written before the handshake has completed.

The unit tests drive the attempt with a fake transport that says it carries
TLS; the others connect over real sockets on 127.0.0.1 to a TLS server in
this process and, where the command exists, to C{openssl s_server}, with
certificates made at test time.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Optional

import pytest
import pytest_twisted
from certificates import Authority, Issued
from helpers import Process, freePort, sayStuffOnClock, until
from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet import reactor, ssl
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    SSL4ClientEndpoint,
    SSL4ServerEndpoint,
    clientFromString,
    serverFromString,
)
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import (
    IHandshakeListener,
    IListeningPort,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.protocols.policies import WrappingFactory
from twisted.python.failure import Failure
from zope.interface import implementer

import twisted
from reconnect import (
    AllEndpointsFailed,
    AttemptTimedOut,
    ClientService,
    EndpointConnector,
    FailoverEndpoint,
    GaveUpConnecting,
    ReconnectingClientFactory,
    isCertificateError,
)
from reconnect.testing import FakeEndpoint

# Twisted 24 and 25+ differ in what their TLS client will speak.
TWISTED_MAJOR = int(twisted.__version__.split(".")[0])


class Recorder(Protocol):
    """
    A client protocol that keeps what it receives.
    """

    def __init__(self) -> None:
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data


@implementer(IHandshakeListener)
class HandshakeRecorder(Recorder):
    """
    A client protocol that listens for the handshake itself.
    """

    handshakes = 0

    def handshakeCompleted(self) -> None:
        self.handshakes += 1


def fakeService(**kwargs: Any) -> tuple[ClientService, FakeEndpoint, Clock]:
    clock = Clock()
    endpoint = FakeEndpoint()
    service = ClientService(
        endpoint,
        Factory.forProtocol(HandshakeRecorder),
        clock=clock,
        retryPolicy=lambda attempt: 1.0,
        **kwargs,
    )
    service.startService()
    return service, endpoint, clock


class BadCertificate(Exception):
    """
    Stands for the TLS error a failed handshake ends the connection with.
    """


def stopAndCheck(service: ClientService, clock: Clock, endpoint: FakeEndpoint) -> None:
    """
    Stop the service, as the reactor would end any connection it closes,
    and check that it stopped and left nothing scheduled.
    """
    stopped = service.stopService()
    for attempt in endpoint.attempts:
        transport = attempt.transport
        if transport is not None and transport.disconnecting and not attempt.lost:
            attempt.lose()
    assert stopped.called
    assert clock.getDelayedCalls() == []


def test_attemptWaitsForTheHandshake() -> None:
    """
    Over a TLS transport, C{whenConnected} does not fire, and the service
    stays C{connecting}, until the handshake has completed; then the
    protocol it hands out has heard of the handshake too.
    """
    service, endpoint, clock = fakeService()
    connected = service.whenConnected()
    endpoint.last.succeed(tls=True)
    assert not connected.called
    assert service.state == "connecting"
    endpoint.last.completeHandshake()
    assert service.state == "connected"
    protocol = connected.result
    assert isinstance(protocol, HandshakeRecorder)
    assert protocol.handshakes == 1
    stopAndCheck(service, clock, endpoint)


def test_plainTransportDoesNotWait() -> None:
    """
    Without TLS, the attempt ends when the endpoint connects, as before.
    """
    service, endpoint, clock = fakeService()
    connected = service.whenConnected()
    endpoint.last.succeed()
    assert connected.called
    stopAndCheck(service, clock, endpoint)


def test_prepareConnectionRunsAfterTheHandshake() -> None:
    """
    C{prepareConnection} runs once the handshake is done, not before.
    """
    prepared: list[object] = []
    service, endpoint, clock = fakeService(prepareConnection=prepared.append)
    endpoint.last.succeed(tls=True)
    assert prepared == []
    endpoint.last.completeHandshake()
    assert len(prepared) == 1
    assert service.state == "connected"
    stopAndCheck(service, clock, endpoint)


def test_failedHandshakeIsAFailedAttempt() -> None:
    """
    A connection lost before its handshake completed is a failed attempt:
    it counts for C{failAfterFailures}, the retry policy paces the next
    one, C{lastFailure} is the TLS error, and C{onConnected} and
    C{onDisconnected} never hear of it.
    """
    heard: list[str] = []
    service, endpoint, clock = fakeService(
        onConnected=lambda protocol: heard.append("connected"),
        onDisconnected=lambda protocol, reason: heard.append("disconnected"),
    )
    connected = service.whenConnected(failAfterFailures=2)
    endpoint.last.succeed(tls=True)
    endpoint.last.lose(BadCertificate("certificate verify failed"))
    assert service.state == "waiting"
    assert not connected.called
    assert len(endpoint.attempts) == 1
    clock.advance(1.0)
    assert len(endpoint.attempts) == 2
    endpoint.last.succeed(tls=True)
    endpoint.last.lose(BadCertificate("certificate verify failed"))
    failure = connected.result
    connected.addErrback(lambda _: None)
    assert failure.check(BadCertificate)
    assert service.lastFailure is not None
    assert service.lastFailure.check(BadCertificate)
    assert heard == []
    stopAndCheck(service, clock, endpoint)


def test_attemptTimeoutCoversTheHandshake() -> None:
    """
    A server that accepts the connection and never answers the handshake
    is cut by C{attemptTimeout}: the transport is aborted and the attempt
    fails with L{AttemptTimedOut}.
    """
    service, endpoint, clock = fakeService(attemptTimeout=5.0)
    connected = service.whenConnected(failAfterFailures=1)
    endpoint.last.succeed(tls=True)
    clock.advance(4.9)
    assert not connected.called
    clock.advance(0.1)
    transport = endpoint.last.transport
    assert transport is not None and transport.disconnecting
    failure = connected.result
    connected.addErrback(lambda _: None)
    assert failure.check(AttemptTimedOut)
    stopAndCheck(service, clock, endpoint)


def test_startTLSInsidePrepareConnectionRunsItOnce() -> None:
    """
    A handshake the attempt did not wait for (C{prepareConnection} started
    TLS on a plain connection, as STARTTLS protocols do) does not run
    C{prepareConnection} again.
    """
    started: list[Deferred[None]] = []

    def prepare(protocol: Any) -> Deferred[None]:
        started.append(Deferred())
        return started[-1]

    service, endpoint, clock = fakeService(prepareConnection=prepare)
    connected = service.whenConnected()
    endpoint.last.succeed()
    assert len(started) == 1
    endpoint.last.protocol.handshakeCompleted()  # type: ignore[union-attr]
    assert len(started) == 1
    started[0].callback(None)
    assert connected.called
    stopAndCheck(service, clock, endpoint)


def test_protocolHearsTheHandshakeBeforeItIsHandedOut() -> None:
    """
    A protocol that listens for the handshake has heard of it by the time
    C{prepareConnection} and C{whenConnected} are given it.
    """
    heard: list[int] = []
    service, endpoint, clock = fakeService(
        prepareConnection=lambda protocol: heard.append(protocol.handshakes)
    )
    connected = service.whenConnected()
    connected.addCallback(lambda protocol: heard.append(protocol.handshakes))
    endpoint.last.succeed(tls=True)
    endpoint.last.completeHandshake()
    assert heard == [1, 1]
    stopAndCheck(service, clock, endpoint)


def test_lateHandshakeAfterTheAttemptEnded() -> None:
    """
    A handshake that completes after its attempt was given up (stopped)
    hands nothing out.
    """
    service, endpoint, clock = fakeService()
    connected = service.whenConnected()
    endpoint.last.succeed(tls=True)
    service.stopService()
    endpoint.last.completeHandshake()
    assert connected.called
    connected.addErrback(lambda _: None)
    assert service.state == "stopped"
    assert clock.getDelayedCalls() == []


def test_sayStuffWritesNothingBeforeTheHandshake() -> None:
    """
    SayStuff holds its queued lines until the handshake is done; a failed
    handshake sends nothing and the line waits for the next connection.
    """
    service, clock, endpoint = sayStuffOnClock(start=True)
    reply = service.sendToServer(b"hello")
    endpoint.last.succeed(tls=True)
    transport = endpoint.last.transport
    assert transport is not None and transport.value() == b""
    endpoint.last.lose(BadCertificate("certificate verify failed"))
    assert not reply.called
    clock.advance(1.0)
    endpoint.last.succeed(tls=True)
    transport = endpoint.last.transport
    assert transport is not None and transport.value() == b""
    endpoint.last.completeHandshake()
    assert transport.value() == b"hello\r\n"
    endpoint.last.protocol.dataReceived(b"HELLO\r\n")  # type: ignore[union-attr]
    assert reply.result == b"HELLO"
    service.stopService()
    endpoint.last.lose()
    assert clock.getDelayedCalls() == []


# What OpenSSL says when a TLS 1.3 server refuses the client's certificate
# after the client's side of the handshake is done.
CERTIFICATE_REQUIRED = SSL.Error(
    [("SSL routines", "", "tlsv13 alert certificate required")]
)


def rejectedAfterHandshake(endpoint: FakeEndpoint) -> Any:
    """
    Connect, complete the handshake, then lose the connection as a TLS 1.3
    server that refuses the client's certificate ends it.

    @return: the protocol handed out.
    """
    endpoint.last.succeed(tls=True)
    endpoint.last.completeHandshake()
    protocol = endpoint.last.protocol
    endpoint.last.lose(CERTIFICATE_REQUIRED)
    return protocol


def assertRejectedAgain(
    service: ClientService, clock: Clock, endpoint: FakeEndpoint
) -> None:
    """
    After a first refused connection, two more: each attempt comes only
    after the policy's delay for one more failure in a row (C{n} seconds
    after the C{n}th), never at once.
    """
    for failedAttempts in (1, 2, 3):
        assert service.state == "waiting"
        assert service.stats().failedAttempts == failedAttempts
        if failedAttempts == 3:
            return
        clock.advance(failedAttempts - 0.001)
        assert len(endpoint.attempts) == failedAttempts
        clock.advance(0.001)
        assert len(endpoint.attempts) == failedAttempts + 1
        rejectedAfterHandshake(endpoint)


def test_certificateRefusedAfterTheHandshakeIsAFailedAttempt() -> None:
    """
    A connection that ends with a certificate error (a TLS 1.3 server
    refusing the client's certificate once the client's side of the
    handshake is done) is a failed attempt, not a lost connection: it is
    counted, the failures in a row are not reset by its connect, so the
    policy's delays grow, and it is logged as an attempt failure naming the
    error.  C{onDisconnected} hears of it (it was handed out).
    """
    events: list[dict[str, Any]] = []
    lost: list[Failure] = []
    clock = Clock()
    endpoint = FakeEndpoint()
    service = ClientService(
        endpoint,
        Factory.forProtocol(HandshakeRecorder),
        clock=clock,
        retryPolicy=lambda attempt: float(attempt),
        onDisconnected=lambda protocol, reason: lost.append(reason),
    )
    service.startService()
    first = service.whenConnected(failAfterFailures=2)
    globalLogPublisher.addObserver(events.append)
    try:
        handedOut = rejectedAfterHandshake(endpoint)
        assertRejectedAgain(service, clock, endpoint)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert first.result is handedOut._protocol
    assert service.lastFailure is not None
    assert isCertificateError(service.lastFailure)
    assert [r.value for r in lost] == [CERTIFICATE_REQUIRED] * 3
    stats = service.stats()
    assert (stats.failures, stats.connects, stats.disconnects) == (3, 3, 3)
    failed = [e for e in events if e["reconnectEvent"] == "attemptFailed"]
    assert [e["delay"] for e in failed] == [1.0, 2.0, 3.0]
    assert all("tlsv13 alert certificate required" in e["reason"] for e in failed)
    assert not [e for e in events if e["reconnectEvent"] == "disconnected"]
    stopAndCheck(service, clock, endpoint)


def test_certificateRefusedAfterTheHandshakeCanBeFatal() -> None:
    """
    C{isFatal=isCertificateError} gives up on a certificate the server
    refused after the handshake: the service is C{gaveUp}, and a waiter
    fails with L{GaveUpConnecting} that carries the TLS error.
    """
    service, endpoint, clock = fakeService(isFatal=isCertificateError)
    rejectedAfterHandshake(endpoint)
    assert service.state == "gaveUp"
    refused = service.whenConnected(failAfterFailures=2)
    failure = refused.result
    refused.addErrback(lambda _: None)
    assert failure.check(GaveUpConnecting)
    assert failure.value.failure.value is CERTIFICATE_REQUIRED
    assert clock.getDelayedCalls() == []
    service.stopService()


def test_certificateRefusedIsNotFailedOverAtOnce() -> None:
    """
    With C{immediateFailover}, a steady connection that is lost is replaced
    at once; one whose certificate the server refused is not: the next
    attempt waits out the policy's delay.
    """
    service, endpoint, clock = fakeService(immediateFailover=True)
    endpoint.last.succeed(tls=True)
    endpoint.last.completeHandshake()
    clock.advance(5.0)
    endpoint.last.lose(CERTIFICATE_REQUIRED)
    assert service.state == "waiting"
    clock.advance(0.5)
    assert len(endpoint.attempts) == 1
    clock.advance(0.5)
    assert len(endpoint.attempts) == 2
    stopAndCheck(service, clock, endpoint)


def test_certificateRefusedWhileHandingOver() -> None:
    """
    A refused connection that ends while its successor is being made (a
    hand-over) calls the successor's attempt off and is judged as a failed
    attempt too.
    """
    retired: list[object] = []
    service, endpoint, clock = fakeService(retireConnection=retired.append)
    endpoint.last.succeed(tls=True)
    endpoint.last.completeHandshake()
    current = endpoint.last
    service.reconnect()
    assert service.state == "handingOver"
    successor = endpoint.last
    current.lose(CERTIFICATE_REQUIRED)
    assert successor.cancelled
    assert service.state == "waiting"
    assert service.stats().failures == 1
    assert retired == []
    stopAndCheck(service, clock, endpoint)


@pytest.mark.parametrize(
    "error, expected",
    [
        (SSL.Error([("SSL routines", "", "certificate verify failed")]), True),
        (SSL.Error([("SSL routines", "", "tlsv1 alert unknown ca")]), True),
        (SSL.Error([("SSL routines", "", "sslv3 alert bad certificate")]), True),
        (SSL.Error([("SSL routines", "", "wrong version number")]), False),
        (VerificationError(errors=[]), True),
        (ConnectionRefusedError(), False),
        (AttemptTimedOut(5.0), False),
    ],
)
def test_isCertificateError(error: Exception, expected: bool) -> None:
    """
    L{isCertificateError} is true for failures that say a certificate was
    not accepted, false for any other.
    """
    assert isCertificateError(Failure(error)) is expected


def test_passOfCertificateErrors() -> None:
    """
    A pass over several servers is a certificate error when every server's
    failure is one, not when only some are.
    """
    bad = Failure(SSL.Error([("SSL routines", "", "certificate verify failed")]))
    refused = Failure(ConnectionRefusedError())
    assert isCertificateError(Failure(AllEndpointsFailed([("a", bad), ("b", bad)])))
    assert not isCertificateError(
        Failure(AllEndpointsFailed([("a", bad), ("b", refused)]))
    )
    assert not isCertificateError(Failure(AllEndpointsFailed([])))


# Over real sockets.


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority(tmp_path / "ca")


@pytest.fixture
def stranger(tmp_path: Path) -> Authority:
    """
    An authority that issued nothing the servers present.
    """
    return Authority(tmp_path / "stranger", "a stranger's CA")


@pytest.fixture
def issued(authority: Authority) -> Issued:
    return authority.issue("localhost")


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


@pytest_twisted.async_yield_fixture
async def tlsServer(issued: Issued) -> AsyncIterator[int]:
    """
    A TLS echo server in this process; the fixture's value is its port.
    """
    description = (
        f"ssl:0:interface=127.0.0.1"
        f":privateKey={issued.key}:certKey={issued.certificate}"
    )
    port: IListeningPort = await serverFromString(reactor, description).listen(
        Factory.forProtocol(Echo)
    )
    yield port.getHost().port
    await port.stopListening()


def tlsEndpoint(port: int, roots: Path, hostname: str = "localhost") -> Any:
    return clientFromString(
        reactor,
        f"tls:{hostname}:{port}:endpoint=tcp\\:127.0.0.1\\:{port}:trustRoots={roots}",
    )


class LogRecorder:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.lines.append(formatEvent(event))


@pytest.fixture
def logged() -> Iterator[LogRecorder]:
    recorder = LogRecorder()
    globalLogPublisher.addObserver(recorder)
    yield recorder
    globalLogPublisher.removeObserver(recorder)


async def giveUpOn(endpoint: Any) -> tuple[ClientService, Failure]:
    """
    Connect with a service that gives up after two failed attempts, a tenth
    of a second apart; its C{whenConnected} must fail within 10 seconds.
    """
    service = ClientService(
        endpoint, Factory.forProtocol(Recorder), retryPolicy=lambda attempt: 0.1
    )
    service.startService()
    outcome: list[Any] = []
    service.whenConnected(failAfterFailures=2).addBoth(outcome.append)
    await until(lambda: outcome, timeout=10.0)
    await service.stopService()
    [failure] = outcome
    assert isinstance(failure, Failure)
    return service, failure


@pytest_twisted.ensureDeferred
async def test_trustedServer(tlsServer: int, authority: Authority) -> None:
    """
    With the server's issuer in the trust roots, C{whenConnected} fires
    once the handshake is done (the peer's certificate is there) and the
    first write goes through.
    """
    service = ClientService(
        tlsEndpoint(tlsServer, authority.roots), Factory.forProtocol(Recorder)
    )
    service.startService()
    try:
        protocol = await service.whenConnected(failAfterFailures=1)
        peer = protocol.transport.getPeerCertificate()
        assert peer is not None
        subject = peer.to_cryptography().subject
        assert subject.rfc4514_string() == "CN=localhost"
        protocol.transport.write(b"hello\n")
        await until(lambda: protocol.received == b"hello\n")
    finally:
        await service.stopService()


@pytest_twisted.ensureDeferred
async def test_untrustedServer(
    tlsServer: int, stranger: Authority, logged: LogRecorder
) -> None:
    """
    A certificate that does not verify: C{whenConnected(failAfterFailures=2)}
    fails with OpenSSL's verification error after two attempts, and the log
    of each failed attempt names it.
    """
    service, failure = await giveUpOn(tlsEndpoint(tlsServer, stranger.roots))
    assert failure.check(SSL.Error)
    assert isCertificateError(failure)
    named = [line for line in logged.lines if "certificate verify failed" in line]
    assert len(named) >= 2, logged.lines


@pytest_twisted.ensureDeferred
async def test_wrongHostname(
    tlsServer: int, authority: Authority, logged: LogRecorder
) -> None:
    """
    A certificate issued to another name fails the same way, with
    service_identity's error, which the log names.
    """
    service, failure = await giveUpOn(
        tlsEndpoint(tlsServer, authority.roots, hostname="wrong.example")
    )
    assert failure.check(VerificationError)
    assert isCertificateError(failure)
    named = [line for line in logged.lines if "DNSMismatch" in line]
    assert len(named) >= 2, logged.lines


@implementer(IStreamClientEndpoint)
class WrappingEndpoint:
    """
    An endpoint that puts a protocol wrapper of its own between the TLS
    layer and the service's protocol.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def connect(self, factory: Any) -> Any:
        connecting = self.inner.connect(WrappingFactory(factory))
        return connecting.addCallback(lambda wrapper: wrapper.wrappedProtocol)


@pytest_twisted.ensureDeferred
async def test_wrapperBetweenTLSAndTheService(
    tlsServer: int, authority: Authority
) -> None:
    """
    When a protocol wrapper stands between the TLS layer and the service,
    the handshake's news does not reach the service: it does not wait for
    it, and connects as before.
    """
    service = ClientService(
        WrappingEndpoint(tlsEndpoint(tlsServer, authority.roots)),
        Factory.forProtocol(Recorder),
        attemptTimeout=5.0,
    )
    service.startService()
    try:
        protocol = await service.whenConnected(failAfterFailures=1)
        protocol.transport.write(b"hello\n")
        await until(lambda: protocol.received == b"hello\n")
    finally:
        await service.stopService()


class Silent(Protocol):
    """
    Accepts the connection and never says a word.
    """


@pytest_twisted.ensureDeferred
async def test_silentServerTimesOut(authority: Authority) -> None:
    """
    A server that completes TCP and never answers the handshake is cut by
    C{attemptTimeout}.
    """
    port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(
        Factory.forProtocol(Silent)
    )
    try:
        service = ClientService(
            tlsEndpoint(port.getHost().port, authority.roots),
            Factory.forProtocol(Recorder),
            retryPolicy=lambda attempt: 0.1,
            attemptTimeout=0.3,
        )
        service.startService()
        outcome: list[Any] = []
        service.whenConnected(failAfterFailures=1).addBoth(outcome.append)
        await until(lambda: outcome, timeout=10.0)
        await service.stopService()
        [failure] = outcome
        assert isinstance(failure, Failure) and failure.check(AttemptTimedOut)
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_ssl4ClientEndpoint(
    tlsServer: int, authority: Authority, stranger: Authority
) -> None:
    """
    Over C{SSL4ClientEndpoint}, whose TLS layer tells the handshake through
    the endpoint's own protocol wrapper, the attempt waits for it too: an
    untrusted certificate fails the attempts, a trusted one connects.
    """

    def endpoint(roots: Authority) -> Any:
        trust = ssl.trustRootFromCertificates(
            [ssl.Certificate.loadPEM(roots.rootFile.read_bytes())]
        )
        return SSL4ClientEndpoint(
            reactor,
            "127.0.0.1",
            tlsServer,
            ssl.optionsForClientTLS("localhost", trustRoot=trust),
        )

    service, failure = await giveUpOn(endpoint(stranger))
    assert isCertificateError(failure)
    service = ClientService(endpoint(authority), Factory.forProtocol(Recorder))
    service.startService()
    try:
        protocol = await service.whenConnected(failAfterFailures=1)
        assert protocol.transport.getPeerCertificate() is not None
    finally:
        await service.stopService()


@pytest_twisted.ensureDeferred
async def test_failoverPastABadCertificate(
    tmp_path: Path, tlsServer: int, authority: Authority
) -> None:
    """
    A L{FailoverEndpoint} whose first server's certificate is not trusted
    goes on, in the same pass, to the second, whose is: the service
    connects with no failed attempt, and the first server's record says it
    failed.
    """
    other = Authority(tmp_path / "other", "another CA").issue("localhost")
    untrusted = await serverFromString(
        reactor,
        f"ssl:0:interface=127.0.0.1:privateKey={other.key}:certKey={other.certificate}",
    ).listen(Factory.forProtocol(Echo))
    try:
        endpoint = FailoverEndpoint(
            [
                tlsDescription(untrusted.getHost().port, authority.roots),
                tlsDescription(tlsServer, authority.roots),
            ],
            reactor=reactor,
        )
        service = ClientService(
            endpoint, Factory.forProtocol(Recorder), retryPolicy=lambda n: 0.1
        )
        service.startService()
        try:
            protocol = await service.whenConnected(failAfterFailures=1)
            assert protocol.transport.getPeerCertificate() is not None
            assert service.stats().failures == 0
            first, second = endpoint.health()
            assert (first.failuresInARow, first.connects) == (1, 0)
            assert (second.connects, second.current) == (1, True)
        finally:
            await service.stopService()
    finally:
        await untrusted.stopListening()


# A server that requires a client certificate.


@asynccontextmanager
async def clientCertificateServer(
    issued: Issued, authority: Authority, tls12: bool
) -> AsyncIterator[int]:
    """
    A TLS echo server in this process that requires a client certificate
    issued by C{authority}; with C{tls12}, it speaks TLS 1.2 at most.  Its
    value is its port.
    """
    certificate = ssl.PrivateCertificate.loadPEM(issued.pem())
    options = ssl.CertificateOptions(
        privateKey=certificate.privateKey.original,
        certificate=certificate.original,
        verify=True,
        requireCertificate=True,
        caCerts=[ssl.Certificate.loadPEM(authority.rootFile.read_bytes()).original],
        lowerMaximumSecurityTo=ssl.TLSVersion.TLSv1_2 if tls12 else None,
    )
    port = await SSL4ServerEndpoint(reactor, 0, options, interface="127.0.0.1").listen(
        Factory.forProtocol(Echo)
    )
    try:
        yield port.getHost().port
    finally:
        await port.stopListening()


def withClientCertificate(endpoint: str, issued: Optional[Issued]) -> Any:
    """
    The C{tls:} endpoint C{endpoint}, presenting C{issued} as the client's
    certificate, if given.
    """
    if issued is not None:
        endpoint += f":certificate={issued.certificate}:privateKey={issued.key}"
    return clientFromString(reactor, endpoint)


def tlsDescription(port: int, roots: Path) -> str:
    return f"tls:localhost:{port}:endpoint=tcp\\:127.0.0.1\\:{port}:trustRoots={roots}"


async def untilGaveUp(endpoint: Any, **kwargs: Any) -> ClientService:
    """
    Run a service whose policy waits a tenth of a second after each of the
    first two failed attempts in a row and gives up at the third, until it
    gives up (within 10 seconds).
    """
    service = ClientService(
        endpoint,
        Factory.forProtocol(Recorder),
        retryPolicy=lambda attempt: 0.1 if attempt < 3 else None,
        **kwargs,
    )
    service.startService()
    try:
        await until(lambda: service.state == "gaveUp", timeout=10.0)
    finally:
        await service.stopService()
    return service


@pytest.mark.parametrize(
    "tls12, presented, certificateError",
    [
        (False, "none", True),
        (False, "stranger's", True),
        (True, "none", False),
        pytest.param(
            True,
            "stranger's",
            True,
            marks=pytest.mark.skipif(
                TWISTED_MAJOR < 25,
                reason="Twisted 24's client, given a certificate of its own,"
                " will not speak TLS 1.2 (tlsv1 alert protocol version)",
            ),
        ),
    ],
)
@pytest_twisted.ensureDeferred
async def test_clientCertificateRefused(
    tmp_path: Path,
    issued: Issued,
    authority: Authority,
    stranger: Authority,
    tls12: bool,
    presented: str,
    certificateError: bool,
) -> None:
    """
    A server that requires a client certificate, and gets none or one from
    another authority, refuses it: under TLS 1.3 after the client's side of
    the handshake is done, under TLS 1.2 within the handshake.  Either way
    each try is a failed attempt, counted in a row (the connects under TLS
    1.3 reset nothing), so a policy that gives up at the third does.  The
    failure is a certificate error, but for TLS 1.2's missing certificate,
    which the server tells only as a C{handshake failure}.
    """
    clientCertificate = None if presented == "none" else stranger.issue("client")
    async with clientCertificateServer(issued, authority, tls12) as port:
        endpoint = withClientCertificate(
            tlsDescription(port, authority.roots), clientCertificate
        )
        lost: list[Failure] = []
        service = await untilGaveUp(
            endpoint, onDisconnected=lambda protocol, reason: lost.append(reason)
        )
    stats = service.stats()
    assert (stats.failures, stats.failedAttempts) == (3, 3)
    assert service.lastFailure is not None
    assert isCertificateError(service.lastFailure) is certificateError
    # Under TLS 1.3, each refused connection was handed out first.
    assert len(lost) == (0 if tls12 else 3)
    assert all(isCertificateError(reason) for reason in lost)


@pytest_twisted.ensureDeferred
async def test_clientCertificateRefusedIsFatal(
    issued: Issued, authority: Authority
) -> None:
    """
    With C{isFatal=isCertificateError}, a TLS 1.3 server that refuses the
    client's certificate after the handshake is given up on at once.
    """
    async with clientCertificateServer(issued, authority, tls12=False) as port:
        service = await untilGaveUp(
            withClientCertificate(tlsDescription(port, authority.roots), None),
            isFatal=isCertificateError,
        )
    assert service.stats().failures == 1
    assert service.lastFailure is not None
    assert "certificate required" in service.lastFailure.getErrorMessage()


@pytest_twisted.ensureDeferred
async def test_clientCertificateAccepted(issued: Issued, authority: Authority) -> None:
    """
    With a client certificate from the authority the server trusts, the
    service connects, and stays connected: a line goes there and back.
    """
    async with clientCertificateServer(issued, authority, tls12=False) as port:
        endpoint = withClientCertificate(
            tlsDescription(port, authority.roots), authority.issue("client")
        )
        service = ClientService(endpoint, Factory.forProtocol(Recorder))
        service.startService()
        try:
            protocol = await service.whenConnected(failAfterFailures=1)
            protocol.transport.write(b"hello")
            await until(lambda: protocol.received == b"hello", 10.0)
            assert service.state == "connected"
            assert service.stats().disconnects == 0
        finally:
            await service.stopService()


# A TLS server no one here wrote.

OPENSSL = shutil.which("openssl")


@asynccontextmanager
async def opensslServer(issued: Issued, *options: str) -> AsyncIterator[int]:
    """
    C{openssl s_server} answering each line reversed, on a free port, with
    C{options} besides; its value is the port, once the server has said it
    accepts.
    """
    if OPENSSL is None:
        pytest.skip("the openssl command is not on this machine")
    port = freePort()
    process = Process()
    reactor.spawnProcess(
        process,
        OPENSSL,
        [
            OPENSSL,
            "s_server",
            "-accept",
            f"127.0.0.1:{port}",
            "-rev",
            "-cert",
            str(issued.certificate),
            "-key",
            str(issued.key),
            *options,
        ],
        env=None,
    )
    try:
        await until(lambda: b"ACCEPT" in process.output or process.ended.called, 10.0)
        assert b"ACCEPT" in process.output, process.output
        yield port
    finally:
        if not process.ended.called:
            process.transport.signalProcess("KILL")
        await process.ended


@pytest_twisted.async_yield_fixture
async def sServer(issued: Issued) -> AsyncIterator[int]:
    """
    C{openssl s_server}, as L{opensslServer} starts it.
    """
    async with opensslServer(issued) as port:
        yield port


@pytest_twisted.ensureDeferred
async def test_opensslServer(
    sServer: int, authority: Authority, stranger: Authority
) -> None:
    """
    Against C{openssl s_server}: trusted, the line goes through after the
    handshake; untrusted, the attempts fail with a certificate error.
    """
    service = ClientService(
        tlsEndpoint(sServer, authority.roots), Factory.forProtocol(Recorder)
    )
    service.startService()
    try:
        protocol = await service.whenConnected(failAfterFailures=1)
        assert protocol.transport.getPeerCertificate() is not None
        protocol.transport.write(b"hello\n")
        await until(lambda: b"olleh" in protocol.received)
    finally:
        await service.stopService()
    service, failure = await giveUpOn(tlsEndpoint(sServer, stranger.roots))
    assert isCertificateError(failure)


@pytest_twisted.ensureDeferred
async def test_opensslServerRequiresAClientCertificate(
    issued: Issued, authority: Authority
) -> None:
    """
    Against C{openssl s_server -Verify 1} (a client certificate required),
    a client with none fails its attempts with the server's certificate
    error and gives up as its policy says; with one the server trusts, it
    connects.
    """
    async with opensslServer(
        issued, "-Verify", "1", "-CAfile", str(authority.rootFile)
    ) as port:
        description = tlsDescription(port, authority.roots)
        service = await untilGaveUp(withClientCertificate(description, None))
        assert service.stats().failures == 3
        assert service.lastFailure is not None
        assert isCertificateError(service.lastFailure)
        service = ClientService(
            withClientCertificate(description, authority.issue("client")),
            Factory.forProtocol(Recorder),
        )
        service.startService()
        try:
            protocol = await service.whenConnected(failAfterFailures=1)
            protocol.transport.write(b"hello\n")
            await until(lambda: b"olleh" in protocol.received)
        finally:
            await service.stopService()


class RecordingReconnectingFactory(ReconnectingClientFactory):
    """
    A legacy factory that records what the connector tells it, and stops
    trying after the first connection lost.
    """

    protocol = HandshakeRecorder

    def __init__(self) -> None:
        self.made: list[HandshakeRecorder] = []
        self.lost: list[Failure] = []
        self.failed: list[Failure] = []

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        self.made.append(protocol)
        return protocol

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        self.lost.append(reason)
        self.stopTrying()

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.failed.append(reason)
        self.stopTrying()


@pytest_twisted.ensureDeferred
async def test_legacyConnectorKeepsTwistedsCallbacks(
    tlsServer: int, stranger: Authority
) -> None:
    """
    Legacy code keeps Twisted's connector contract over TLS: the connection
    is made when TCP connects, and a handshake that fails ends it with
    C{clientConnectionLost}, the reason being the certificate error.
    """
    factory = RecordingReconnectingFactory()
    connector = EndpointConnector(
        tlsEndpoint(tlsServer, stranger.roots), factory, reactor
    )
    connector.connect()
    await until(lambda: factory.lost or factory.failed, timeout=10.0)
    assert factory.failed == []
    [reason] = factory.lost
    assert isCertificateError(reason)
    assert [protocol.handshakes for protocol in factory.made] == [0]


def test_guideSnippet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """
    The guide's TLS snippet runs as written, in a folder holding the trust
    roots and client certificate it names.
    """
    guide = (Path(__file__).parent.parent / "docs" / "guide.md").read_text()
    [snippet] = [
        block
        for block in re.findall(r"^```python\n(.*?)^```", guide, re.M | re.S)
        if block.startswith("# tls_client.py")
    ]
    authority = Authority(tmp_path / "made")
    shutil.copytree(authority.roots, tmp_path / "ca")
    client = authority.issue("client")
    shutil.copy(client.certificate, tmp_path / "client.crt")
    shutil.copy(client.key, tmp_path / "client.key")
    monkeypatch.chdir(tmp_path)
    names: dict[str, Any] = {}
    exec(compile(snippet, "tls_client.py", "exec"), names)
    service = names["service"]
    assert isinstance(service, ClientService)
    assert service.state == "init"
