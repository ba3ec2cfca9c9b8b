"""
Scale: thousands of connected services in one process.

Each service keeps one TCP connection to an echo server that runs in another
process (so that the server's sockets do not count against this process's
file limit, nor its objects against this process's memory).  Anchor:
Twisted's own C{ClientService}, measured in the same process, in
alternating rounds.

Memory per service is what C{tracemalloc} sees allocated between before the
services are made and when all are connected, divided by their number: the
service, its machine, the protocol, the transport and the socket's Python
objects (the kernel's buffers are not Python's and are the same for both).
Time is from the first C{startService} until the last C{whenConnected} has
fired, measured in rounds without C{tracemalloc}.  A first round of each,
not counted, warms up what grows only once.
"""

from __future__ import annotations

import gc
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from typing import Any

from twisted.application.internet import ClientService as TwistedClientService
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater

from reconnect import ClientService

SERVER = """
import sys
from twisted.internet import reactor
from reconnect.saystuff import EchoLineFactory
port = reactor.listenTCP(0, EchoLineFactory(), backlog=4096, interface="127.0.0.1")
print(port.getHost().port, flush=True)
reactor.run()
"""


def raiseFileLimit(wanted: int) -> int:
    """
    Raise this process's open-file limit towards C{wanted}; return it.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = hard if hard != resource.RLIM_INFINITY else wanted
    target = min(wanted, limit)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Bare:
    """
    The floor: a plain C{endpoint.connect} per connection, no service; all
    that is kept of each is its protocol, in one list for them all.
    """


def neverMind(attempt: int) -> float:
    return 0.05


CONTENDERS = {
    "bare": Bare,
    "twisted": TwistedClientService,
    "reconnect": ClientService,
}


async def connectAll(
    reactor: Any, serviceClass: Any, port: int, count: int
) -> tuple[list[Any], float]:
    """
    Start C{count} services (or bare connections) and wait until all are
    connected, keeping nothing of them but the services (the protocols),
    so that memory counts only what they keep.
    """
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    factory = Factory.forProtocol(Protocol)
    allConnected: Deferred[None] = Deferred()
    left = [count]
    kept: list[Any] = []

    def connected(result: object) -> None:
        left[0] -= 1
        if serviceClass is Bare:
            kept.append(result)
        if not left[0]:
            allConnected.callback(None)

    start = time.perf_counter()
    for _ in range(count):
        if serviceClass is Bare:
            endpoint.connect(factory).addCallback(connected)
        else:
            service = serviceClass(endpoint, factory, retryPolicy=neverMind)
            kept.append(service)
            service.startService()
            service.whenConnected().addCallback(connected)
    await allConnected
    return kept, time.perf_counter() - start


def stopOne(serviceOrProtocol: Any) -> Deferred[Any]:
    if isinstance(serviceOrProtocol, Protocol):
        lost: Deferred[None] = Deferred()
        protocol = serviceOrProtocol
        protocol.connectionLost = lambda reason: lost.callback(None)  # type: ignore[method-assign]
        protocol.transport.loseConnection()  # type: ignore[union-attr]
        return lost
    return serviceOrProtocol.stopService()  # type: ignore[no-any-return]


async def stopAll(reactor: Any, services: list[Any]) -> float:
    """
    Stop every service; the seconds until every stop has fired.
    """
    # Twisted's ClientService raises RuntimeError if stopService runs inside
    # its own whenConnected callback, which is where an await resumes: leave
    # that callback first.
    await deferLater(reactor, 0, lambda: None)
    gc.collect()
    start = time.perf_counter()
    await gatherResults([stopOne(service) for service in services])
    return time.perf_counter() - start


async def memoryPerService(
    reactor: Any, serviceClass: Any, port: int, count: int
) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    services, _ = await connectAll(reactor, serviceClass, port, count)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    await stopAll(reactor, services)
    return (after - before) / count


def pairRatios(ours: list[float], theirs: list[float]) -> list[float]:
    """
    Ours over theirs, round by round.
    """
    return [o / t for o, t in zip(ours, theirs, strict=True)]


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


async def run(reactor: Any, count: int = 3000, rounds: int = 5) -> list[dict[str, Any]]:
    limit = raiseFileLimit(count + 200)
    count = min(count, limit - 200)
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True
    )
    memory: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    connecting: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    stopping: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        # A round not counted: the reactor's tables and Python's free lists
        # grow to their size for this many connections once, in whichever
        # round comes first.
        for serviceClass in CONTENDERS.values():
            services, _ = await connectAll(reactor, serviceClass, port, count)
            await stopAll(reactor, services)
        for turn in range(rounds):
            order = list(CONTENDERS.items())
            if turn % 2:
                order.reverse()
            for name, serviceClass in order:
                memory[name].append(
                    await memoryPerService(reactor, serviceClass, port, count)
                )
                services, took = await connectAll(reactor, serviceClass, port, count)
                connecting[name].append(took)
                stopping[name].append(await stopAll(reactor, services))
    finally:
        server.terminate()
        server.wait()

    def above(name: str) -> list[float]:
        return [m - b for m, b in zip(memory[name], memory["bare"], strict=True)]

    ours, theirs = above("reconnect"), above("twisted")
    memoryRatios = pairRatios(ours, theirs)
    common = {
        "anchor": "twisted ClientService",
        "contender": "reconnect ClientService",
        "rounds": rounds,
        "count": count,
    }

    def timed(title: str, seconds: dict[str, list[float]]) -> dict[str, Any]:
        ratios = pairRatios(seconds["reconnect"], seconds["twisted"])
        return {
            "benchmark": title,
            **common,
            "unit": "s (ratio: ours / theirs)",
            "anchor_median": round(statistics.median(seconds["twisted"]), 3),
            "contender_median": round(statistics.median(seconds["reconnect"]), 3),
            "ratio": round(statistics.median(ratios), 3),
            "spread": spread(ratios),
        }

    return [
        {
            "benchmark": (
                f"memory of a connected service above the bare connection "
                f"({count} services)"
            ),
            **common,
            "unit": "bytes/service (tracemalloc)",
            "anchor_median": round(statistics.median(theirs)),
            "contender_median": round(statistics.median(ours)),
            "bare_median": round(statistics.median(memory["bare"])),
            "ratio": round(statistics.median(memoryRatios), 3),
            "spread": spread(memoryRatios),
        },
        timed(f"stopping {count} connected services", stopping),
        timed(f"connecting {count} services", connecting),
    ]
