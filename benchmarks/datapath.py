"""
The data path: pipelined requests over loopback to a line echo server.

Anchor: the floor for any Twisted line client, a bare C{LineReceiver} that
keeps a FIFO of L{Deferred}s and fires the oldest with each line.  The
contender is L{SayStuffToServerService.sendToServer}, with its validation,
queue, timeouts bookkeeping and reconnecting machinery.  Both talk to the
same echo server, in one process and on one reactor, in alternating rounds,
each keeping a window of requests in flight.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.protocols.basic import LineReceiver

from reconnect.saystuff import RestartableLineServer, SayStuffToServerService

from ._timing import Comparison


class BareLineClient(LineReceiver):
    """
    A line client with nothing but a FIFO of Deferreds.
    """

    delimiter = b"\r\n"
    MAX_LENGTH = 16384

    def __init__(self) -> None:
        self.waiting: deque[Deferred[bytes]] = deque()

    def request(self, line: bytes) -> Deferred[bytes]:
        reply: Deferred[bytes] = Deferred()
        self.waiting.append(reply)
        self.sendLine(line)
        return reply

    def lineReceived(self, line: bytes) -> None:
        self.waiting.popleft().callback(line)


def pipeline(
    send: Callable[[bytes], Deferred[bytes]], requests: int, window: int
) -> Deferred[float]:
    """
    Send C{requests} lines, never more than C{window} unanswered; fire with
    the requests per second once every reply has come and matched.
    """
    done: Deferred[float] = Deferred()
    state = {"sent": 0, "answered": 0}
    start = time.perf_counter()

    def sendOne() -> None:
        number = state["sent"]
        state["sent"] += 1
        line = b"request %d" % (number,)
        send(line).addCallback(answered, line)

    def answered(reply: bytes, line: bytes) -> None:
        if reply != line:
            done.errback(AssertionError(f"{reply!r} answered {line!r}"))
            return
        state["answered"] += 1
        if state["sent"] < requests:
            sendOne()
        elif state["answered"] == requests:
            done.callback(requests / (time.perf_counter() - start))

    for _ in range(min(window, requests)):
        sendOne()
    return done


async def run(
    reactor: Any, rounds: int = 9, requests: int = 20000, window: int = 500
) -> Comparison:
    server = RestartableLineServer(reactor)
    port = await server.start()
    bare = await connectProtocol(
        TCP4ClientEndpoint(reactor, "127.0.0.1", port), BareLineClient()
    )
    saystuff = SayStuffToServerService(
        endpoint=f"tcp:127.0.0.1:{port}", reactor=reactor, queueSize=window
    )
    saystuff.startService()
    await saystuff.clientService.whenConnected()
    comparison = Comparison(
        f"data path ({window} in flight, loopback echo)",
        "bare LineReceiver + FIFO",
        "SayStuff sendToServer",
        "requests/s",
    )
    await pipeline(bare.request, 2000, window)
    await pipeline(saystuff.sendToServer, 2000, window)
    for round in range(rounds):
        contenders = [
            (bare.request, comparison.anchorRates),
            (saystuff.sendToServer, comparison.contenderRates),
        ]
        if round % 2:
            contenders.reverse()
        for send, rates in contenders:
            gc.collect()
            rates.append(await pipeline(send, requests, window))
    await saystuff.stopService()
    bare.transport.loseConnection()
    await server.kill()
    return comparison
