"""
Failover under load: three C{saystuff-server} processes on loopback, one
SayStuff client over a L{FailoverEndpoint} of the three (priority order)
whose retry policy waits 2 s, sending about 2,500 requests a second.  Every
2-3 s the server in use is killed (SIGKILL) and started again 3 s later.

Reports whether every request was answered with its own line, and, for each
kill, the seconds from the kill to the first reply to a request sent after
it (median, p99, max): failover must not wait on the 2 s backoff while
another server is up.

    python -m benchmarks.failover [--seconds 20] [--save]

Not part of C{python -m benchmarks} nor of the unit tests (the tests have a
smaller in-process version); C{--save} writes
C{benchmarks/results/failover.json}.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import globalLogBeginner

from reconnect import FailoverEndpoint
from reconnect.saystuff import SayStuffToServerService

from ._script import printAndSave

TWISTD = str(Path(sys.executable).parent / "twistd")
RATE = 2500
TICK = 0.01


class Server(ProcessProtocol):
    """
    One C{twistd saystuff-server} process.
    """

    def __init__(self, reactor: Any, port: int) -> None:
        self.reactor = reactor
        self.port = port
        self.output = b""
        self.ended: Deferred[None] = Deferred()

    @classmethod
    async def start(cls, reactor: Any, port: int) -> Server:
        server = cls(reactor, port)
        args = [TWISTD, "--pidfile=", "-n", "saystuff-server", "--port", str(port)]
        reactor.spawnProcess(server, TWISTD, args, env=dict(os.environ))
        while b"starting on" not in server.output:
            await deferLater(reactor, 0.02, lambda: None)
        return server

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(None)

    async def kill(self) -> None:
        assert self.transport is not None
        self.transport.signalProcess(signal.SIGKILL)
        await self.ended


def freePort() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run(reactor: Any, seconds: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    ports = [freePort() for _ in range(3)]
    servers = [await Server.start(reactor, port) for port in ports]
    endpoint = FailoverEndpoint(
        [f"tcp:host=127.0.0.1:port={port}" for port in ports], reactor=reactor
    )
    client = SayStuffToServerService(
        endpoint=endpoint, reactor=reactor, retryPolicy=lambda n: 2.0, queueSize=10**6
    )
    client.startService()
    await client.clientService.whenConnected()

    sent = answered = mismatched = failed = 0
    outstanding: set[Deferred[bytes]] = set()
    kills: list[float] = []
    gaps: list[float] = []

    def done(reply: Any, line: bytes, request: Deferred[bytes], at: float) -> None:
        nonlocal answered, mismatched, failed
        outstanding.discard(request)
        if not isinstance(reply, bytes):
            failed += 1
            return
        answered += 1
        mismatched += reply != line
        if kills and len(gaps) < len(kills) and at >= kills[-1]:
            gaps.append(reactor.seconds() - kills[-1])

    def send() -> None:
        nonlocal sent
        for _ in range(int(RATE * TICK)):
            line = b"request %d" % sent
            sent += 1
            request = client.sendToServer(line)
            outstanding.add(request)
            request.addBoth(done, line, request, reactor.seconds())

    sender = LoopingCall(send)
    sender.clock = reactor
    sender.start(TICK)
    restarts: list[Deferred[Any]] = []
    end = reactor.seconds() + seconds
    while reactor.seconds() < end - 3:
        await deferLater(reactor, rng.uniform(2.0, 3.0), lambda: None)
        inUse = ports.index(int(str(endpoint.current).rsplit(":", 1)[1]))
        kills.append(reactor.seconds())
        await servers[inUse].kill()

        async def restart(index: int) -> None:
            await deferLater(reactor, 3.0, lambda: None)
            servers[index] = await Server.start(reactor, ports[index])

        restarts.append(ensureDeferred(restart(inUse)))
    sender.stop()
    while outstanding:
        await deferLater(reactor, 0.05, lambda: None)
    for pending in restarts:
        await pending
    await client.stopService()
    for server in servers:
        await server.kill()
    return {
        "seconds": seconds,
        "seed": seed,
        "sent": sent,
        "answered": answered,
        "mismatched": mismatched,
        "failed": failed,
        "lost": sent - answered - failed,
        "kills": len(kills),
        "killToNextReply": {
            "median": round(percentile(gaps, 0.5), 4),
            "p99": round(percentile(gaps, 0.99), 4),
            "max": round(max(gaps), 4),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.failover")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=random.randrange(10**6))
    parser.add_argument("--save", action="store_true", help="write the results file")
    options = parser.parse_args()
    globalLogBeginner.beginLoggingTo([], redirectStandardIO=False)

    printAndSave(
        lambda reactor: run(reactor, options.seconds, options.seed),
        "failover",
        options.save,
    )


if __name__ == "__main__":
    main()
