"""
L{ChaosProxy}: a TCP proxy on loopback that breaks connections on command,
for testing code that must survive a bad network.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any, Optional

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IListeningPort, ITransport
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure


class _Pipe:
    """
    One direction of one proxied connection: bytes in order, maybe delayed,
    maybe a byte per write, maybe dropped.
    """

    def __init__(self, proxy: ChaosProxy) -> None:
        self._proxy = proxy
        self.target: Optional[ITransport] = None
        self.silent = False
        self._pending: deque[bytes] = deque()
        self._busy = False

    def send(self, data: bytes) -> None:
        if self.silent:
            return
        proxy = self._proxy
        if proxy.trickle:
            self._pending.extend(data[i : i + 1] for i in range(len(data)))
        else:
            self._pending.append(data)
        if not self._busy:
            self._next()

    def _next(self) -> None:
        """
        Write what is pending: with no gap to keep, at once, each piece a
        write of its own (a loop, not a call per piece, so a long trickle
        does not recurse); otherwise one piece, and the next after the gap.
        """
        proxy = self._proxy
        gap = proxy.delay if not proxy.trickle else max(proxy.delay, proxy.trickleGap)
        while gap <= 0 and self._pending and self.target is not None:
            self._writeOne()
        if not self._pending or self.target is None:
            self._busy = False
            return
        self._busy = True
        proxy._reactor.callLater(gap, self._writeThenNext)

    def _writeOne(self) -> None:
        if self.silent:
            self._pending.clear()
        elif self._pending and self.target is not None:
            self.target.write(self._pending.popleft())

    def _writeThenNext(self) -> None:
        self._writeOne()
        self._next()


class _Upstream(Protocol):
    def __init__(self, link: _Link) -> None:
        self._link = link

    def dataReceived(self, data: bytes) -> None:
        self._link.down.send(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._link.upstreamLost()


class _Link(Protocol):
    """
    The client's side of one proxied connection, and its way upstream.
    """

    def __init__(self, proxy: ChaosProxy) -> None:
        self._proxy = proxy
        self.up = _Pipe(proxy)
        self.down = _Pipe(proxy)
        self._upstream: Optional[_Upstream] = None
        self._closed = False

    def connectionMade(self) -> None:
        proxy = self._proxy
        proxy.links.add(self)
        proxy.accepted += 1
        assert self.transport is not None
        self.down.target = self.transport
        if proxy.hangConnects:
            return
        connecting = connectProtocol(
            TCP4ClientEndpoint(proxy._reactor, proxy.host, proxy.upstreamPort),
            _Upstream(self),
        )
        connecting.addCallbacks(self._upstreamMade, self._upstreamFailed)

    def _upstreamMade(self, upstream: _Upstream) -> None:
        if self._closed:
            upstream.transport.abortConnection()  # type: ignore[union-attr]
            return
        self._upstream = upstream
        self.up.target = upstream.transport
        self.up._next()

    def _upstreamFailed(self, reason: Failure) -> None:
        self.abort()

    def dataReceived(self, data: bytes) -> None:
        self.up.send(data)

    def upstreamLost(self) -> None:
        self.abort()

    def abort(self) -> None:
        """
        Abort both sides at once.
        """
        self._closed = True
        for transport in (self.transport, self.up.target):
            if transport is not None:
                transport.abortConnection()  # type: ignore[attr-defined]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._proxy.links.discard(self)
        self.abort()


class ChaosProxy:
    """
    Forwards TCP connections from a port on 127.0.0.1 to a server, and
    breaks them when told to.

    Faults that last (set the attribute; it applies to what comes next):
      - C{hangConnects}: accept new connections but never connect them
        upstream, so a client connects and then hears nothing;
      - C{trickle}: forward one byte per write, C{trickleGap} seconds apart,
        so lines arrive split at every byte;
      - C{delay}: seconds to hold each chunk before forwarding it.

    Faults on command: L{cutAll} (abort every live connection, both sides),
    L{refuse} / L{accept} (stop and start listening, so connects are
    refused), L{silence} (stop forwarding on the connections now open, in
    one or both directions, without closing them: a half-open connection),
    L{wanderDelay} (a C{delay} that keeps changing).

    @ivar port: the port clients connect to, fixed once L{start} has run.
    @ivar accepted: how many connections have been accepted so far.
    """

    def __init__(
        self, reactor: Any, upstreamPort: int, host: str = "127.0.0.1"
    ) -> None:
        self._reactor = reactor
        self.upstreamPort = upstreamPort
        self.host = host
        self.port = 0
        self.links: set[_Link] = set()
        self.accepted = 0
        self.hangConnects = False
        self.trickle = False
        self.trickleGap = 0.0
        self.delay = 0.0
        self._listening: Optional[IListeningPort] = None

    def start(self) -> Deferred[int]:
        """
        Listen (again, on the same port after the first time); fires with the
        port number.
        """
        return self.accept()

    def accept(self) -> Deferred[int]:
        """
        Listen, so that connects succeed again.
        """
        if self._listening is None:
            factory = Factory.forProtocol(lambda: _Link(self))
            self._listening = self._reactor.listenTCP(
                self.port, factory, interface=self.host
            )
            self.port = self._listening.getHost().port  # type: ignore[union-attr]
        return succeed(self.port)

    def refuse(self) -> Deferred[None]:
        """
        Stop listening: new connects are refused; live connections go on.
        """
        listening, self._listening = self._listening, None
        if listening is None:
            return succeed(None)
        return maybeDeferred(listening.stopListening).addCallback(lambda _: None)

    def cutAll(self) -> int:
        """
        Abort every live connection, both sides; return how many.
        """
        links = list(self.links)
        for link in links:
            link.abort()
        return len(links)

    def silence(self, up: bool = True, down: bool = True) -> int:
        """
        Stop forwarding on every connection open now: C{up} is client to
        server, C{down} server to client.  Return how many connections.
        """
        for link in self.links:
            link.up.silent = link.up.silent or up
            link.down.silent = link.down.silent or down
        return len(self.links)

    def wanderDelay(self, highest: float, every: float, seed: int) -> LoopingCall:
        """
        Every C{every} seconds, set C{delay} to a new one drawn evenly from
        0 to C{highest} (from a generator seeded with C{seed}): a link whose
        latency wanders.

        @return: the running call; stop it to stop wandering.
        """
        draw = random.Random(seed)

        def wander() -> None:
            self.delay = draw.uniform(0.0, highest)

        wandering = LoopingCall(wander)
        wandering.clock = self._reactor
        wandering.start(every)
        return wandering

    async def stop(self) -> None:
        """
        Stop listening and cut everything.
        """
        await self.refuse()
        self.cutAll()
