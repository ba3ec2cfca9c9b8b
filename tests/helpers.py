"""
Helpers for the tests that run real processes: twistd, the examples.
"""

from __future__ import annotations

import os
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, TimeoutError, gatherResults
from twisted.internet.interfaces import (
    IDelayedCall,
    IHostnameResolver,
    IHostResolution,
    IReactorPluggableNameResolver,
    IResolutionReceiver,
)
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from reconnect.saystuff import RestartableLineServer, SayStuffToServerService
from reconnect.saystuff._server import EchoLineFactory, EchoLineProtocol
from reconnect.testing import ChaosProxy, FakeAttempt, FakeEndpoint

ROOT = Path(__file__).resolve().parent.parent
TWISTD = str(Path(sys.executable).parent / "twistd")


class Process(ProcessProtocol):
    def __init__(self) -> None:
        self.output = b""
        self.ended: Deferred[int] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data

    def errReceived(self, data: bytes) -> None:
        self.output += data

    def processEnded(self, reason: Any) -> None:
        self.signal = reason.value.signal
        self.ended.callback(reason.value.exitCode)


class StdoutOnly(Process):
    def __init__(self) -> None:
        super().__init__()
        self.stdout = b""
        self.stderr = b""

    def outReceived(self, data: bytes) -> None:
        self.stdout += data

    def errReceived(self, data: bytes) -> None:
        self.stderr += data


def twistd(
    where: Path,
    *args: str,
    protocol: Process | None = None,
    env: dict[str, str] | None = None,
) -> Process:
    """
    Run C{twistd -n ARGS} in C{where}, with no pidfile, on the reactor the
    tests run on.
    """
    process = protocol or Process()
    reactor.spawnProcess(
        process,
        TWISTD,
        [TWISTD, "--pidfile=", "-n", *sameReactor(), *args],
        env=dict(os.environ, **(env or {})),
        path=str(where),
    )
    return process


def sameReactor() -> list[str]:
    """
    The twistd option that runs it on the reactor the tests run on: with
    C{pytest --reactor=asyncio}, the plugins are tried on asyncio too.
    """
    if type(reactor).__name__ == "AsyncioSelectorReactor":
        return ["--reactor=asyncio"]
    return []


def freePort() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def outcome(d: Deferred[Any]) -> Any:
    """
    What C{d} has fired with (its failure, handled), or L{None} if it has
    not fired.
    """
    seen: list[Any] = []
    d.addBoth(seen.append)
    if seen and isinstance(seen[0], Failure):
        d.addErrback(lambda _: None)
    return seen[0] if seen else None


async def sleep(seconds: float) -> None:
    await deferLater(reactor, seconds, lambda: None)


async def until(predicate: Any, timeout: float = 20.0) -> None:
    waited = 0.0
    while not predicate():
        assert waited < timeout, "timed out waiting"
        await deferLater(reactor, 0.02, lambda: None)
        waited += 0.02


async def endedWithin(process: Process, seconds: float) -> int | None:
    """
    The exit status of C{process}, which must end within C{seconds}: if it
    does not, it is killed and the test fails.
    """
    try:
        code: int | None = await process.ended.addTimeout(seconds, reactor)
    except TimeoutError:
        process.transport.signalProcess("KILL")  # type: ignore[union-attr]
        raise AssertionError(f"twistd still running after {seconds} s") from None
    return code


class LineCollector(LineReceiver):
    delimiter = b"\r\n"

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line)


async def stop(process: Process) -> None:
    """
    Send SIGTERM and check that twistd shut down cleanly.  (twistd ends by
    raising the signal again once it has shut down, so that its exit status
    tells how it ended.)
    """
    process.transport.signalProcess("TERM")  # type: ignore[union-attr]
    code = await process.ended
    assert code == 0 or process.signal == 15, (code, process.signal)
    assert b"Server Shut Down." in process.output, process.output.decode()
    assert b"Traceback" not in process.output, process.output.decode()


class Talker(LineReceiver):
    """
    A legacy client protocol: says hello, numbered, on each connection.
    """

    delimiter = b"\r\n"

    def connectionMade(self) -> None:
        self.factory.resetDelay()
        self.factory.connections += 1
        self.sendLine(b"hello %d" % self.factory.connections)

    def lineReceived(self, line: bytes) -> None:
        self.factory.heard.append(line)


def talkingFactory() -> Any:
    """
    A L{reconnect.ReconnectingClientFactory} of L{Talker}s that retries
    quickly and remembers what it heard.
    """
    from reconnect import ReconnectingClientFactory

    class TalkingFactory(ReconnectingClientFactory):
        protocol = Talker
        noisy = False
        initialDelay = 0.02
        maxDelay = 0.1

        def __init__(self) -> None:
            self.connections = 0
            self.heard: list[bytes] = []

    return TalkingFactory()


def pending(endpoint: FakeEndpoint) -> list[FakeAttempt]:
    """
    The attempts on C{endpoint} that are not decided yet.
    """
    return [a for a in endpoint.attempts if not a.deferred.called and not a.protocol]


def live(endpoint: FakeEndpoint) -> list[FakeAttempt]:
    """
    The attempts on C{endpoint} that connected and whose connection is up.
    """
    return [a for a in endpoint.attempts if a.protocol is not None and not a.lost]


class EndpointAndClockRules(RuleBasedStateMachine):
    """
    The world's part of a stateful test over a L{FakeEndpoint} on a
    L{Clock}: attempts that connect or fail (or, never decided, hang),
    connections that drop, time that passes.  A state machine that sets
    C{self.endpoint} and C{self.clock} in its C{initialize} rule gets them.
    """

    endpoint: FakeEndpoint
    clock: Clock

    @precondition(lambda self: pending(self.endpoint))
    @rule()
    def connectSucceeds(self) -> None:
        pending(self.endpoint)[-1].succeed()

    @precondition(lambda self: pending(self.endpoint))
    @rule()
    def connectFails(self) -> None:
        pending(self.endpoint)[-1].fail()

    @precondition(lambda self: live(self.endpoint))
    @rule(data=st.data())
    def connectionDrops(self, data: st.DataObject) -> None:
        data.draw(st.sampled_from(live(self.endpoint))).lose()

    @rule(seconds=st.sampled_from([0.1, 1.0, 10.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)


@implementer(IReactorPluggableNameResolver)
class ResolvingMemoryReactor(MemoryReactorClock):
    """
    A C{MemoryReactorClock} with the name resolver real reactors have (Twisted
    24.7's has none, and a C{HostnameEndpoint} made on it warns).
    """

    nameResolver = None


@implementer(IHostnameResolver)
class NamesAsTheyAre:
    """
    Resolves every host name to an address that is the name itself, so
    that the host a C{HostnameEndpoint} passes to C{connectTCP} is the one
    it was given; a subclass may answer otherwise (L{addressOf}).
    """

    def addressOf(self, hostName: str) -> str:
        """
        The one address C{hostName} resolves to.
        """
        return hostName

    def resolveHostName(
        self,
        resolutionReceiver: IResolutionReceiver,
        hostName: str,
        portNumber: int = 0,
        addressTypes: object = None,
        transportSemantics: str = "TCP",
    ) -> IHostResolution:
        resolution = _Resolution(hostName)
        resolutionReceiver.resolutionBegan(resolution)
        resolutionReceiver.addressResolved(
            IPv4Address("TCP", self.addressOf(hostName), portNumber)
        )
        resolutionReceiver.resolutionComplete()
        return resolution


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name: str) -> None:
        self.name = name

    def cancel(self) -> None:
        pass


@implementer(IReactorPluggableNameResolver)
class ConnectingByName(MemoryReactorClock):
    """
    A memory reactor that connects by name: its resolver keeps names as
    they are (C{MemoryReactor}'s resolves every name to 127.0.0.1, and
    Twisted 24.7's has none), so that C{tcpClients} shows the host an SRV
    record gave.
    """

    def __init__(self) -> None:
        super().__init__()
        self.nameResolver = NamesAsTheyAre()


def stateMachineTest(machine: type[RuleBasedStateMachine], examples: int) -> Any:
    """
    The test case of C{machine}: C{examples} runs of up to 40 steps each,
    with no deadline (a run drives many steps on a fake clock).
    """
    machine.TestCase.settings = settings(
        max_examples=examples,
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    return machine.TestCase


class CountingEchoProtocol(EchoLineProtocol):
    """
    The echo server's protocol, counting how often it was given each line.
    """

    def lineReceived(self, line: bytes) -> None:
        self.factory.seen[line] += 1
        super().lineReceived(line)


class CountingEchoFactory(EchoLineFactory):
    """
    The echo server's factory; C{seen} counts each line its connections got
    (for a line that carries a request's id: how often it ran).
    """

    protocol = CountingEchoProtocol

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter[bytes] = Counter()


def sayStuffOnClock(
    start: bool = False, **kwargs: Any
) -> tuple[SayStuffToServerService, Clock, FakeEndpoint]:
    """
    A SayStuff service over a L{FakeEndpoint} on a L{Clock} (a retry policy
    of 1 s unless given), started if C{start}.
    """
    clock = Clock()
    endpoint = FakeEndpoint()
    kwargs.setdefault("retryPolicy", lambda n: 1.0)
    made = SayStuffToServerService(endpoint=endpoint, reactor=clock, **kwargs)
    if start:
        made.startService()
    return made, clock, endpoint


@asynccontextmanager
async def echoBehindProxy(
    factory: EchoLineFactory | None = None,
) -> AsyncIterator[tuple[RestartableLineServer, ChaosProxy]]:
    """
    The echo server (with C{factory}, if given) and a chaos proxy in front
    of it, both stopped on the way out.
    """
    server = RestartableLineServer(reactor)
    if factory is not None:
        server.factory = factory
    port = await server.start()
    proxy = ChaosProxy(reactor, port)
    await proxy.start()
    try:
        yield server, proxy
    finally:
        await proxy.stop()
        await server.kill()


def saystuffThrough(proxy: ChaosProxy, **options: Any) -> SayStuffToServerService:
    """
    A started SayStuff client of the server behind C{proxy}, retrying every
    20 ms unless told otherwise.
    """
    options.setdefault("retryPolicy", lambda n: 0.02)
    service = SayStuffToServerService(
        endpoint=f"tcp:127.0.0.1:{proxy.port}", reactor=reactor, **options
    )
    service.startService()
    return service


async def killServersInTurn(
    service: SayStuffToServerService,
    endpoint: Any,
    byPort: dict[int, RestartableLineServer],
    kills: int,
) -> tuple[list[float], set[int]]:
    """
    Kill the server C{service} is connected to (C{endpoint.current} names
    it; C{byPort} finds it), C{kills} times in turn, bringing each back 0.3
    s later: before each kill, 200 requests are sent and the connection is
    up for over a second (steady, not flapping); after it, one more request
    must be answered.  Every request must be answered with its own line.

    @return: how long after each kill its request was answered, and the
        ports of the servers killed.
    """
    sent: list[tuple[bytes, Deferred[bytes]]] = []
    gaps: list[float] = []
    restarts: list[IDelayedCall] = []
    used = set()
    try:
        await service.clientService.whenConnected()
        for kill in range(kills):
            for n in range(200):
                line = b"kill %d line %d" % (kill, n)
                sent.append((line, service.sendToServer(line)))
            await sleep(1.1)
            inUse = int(str(endpoint.current).rsplit(":", 1)[1])
            used.add(inUse)
            killedAt = reactor.seconds()
            await byPort[inUse].kill()
            assert await service.sendToServer(b"after kill %d" % kill) == (
                b"after kill %d" % kill
            )
            gaps.append(reactor.seconds() - killedAt)
            restarts.append(reactor.callLater(0.3, byPort[inUse].start))
        replies = await gatherResults([d for _, d in sent])
        assert replies == [line for line, _ in sent]
    finally:
        for restart in restarts:
            if restart.active():
                restart.cancel()
    return gaps, used
