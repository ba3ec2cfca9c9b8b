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
fired, measured in rounds without C{tracemalloc}.
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
from twisted.internet.defer import gatherResults
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


async def connectAll(
    reactor: Any, serviceClass: Any, port: int, count: int
) -> tuple[list[Any], float]:
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    factory = Factory.forProtocol(Protocol)
    services = [
        serviceClass(endpoint, factory, retryPolicy=lambda n: 0.05)
        for _ in range(count)
    ]
    start = time.perf_counter()
    for service in services:
        service.startService()
    await gatherResults([service.whenConnected() for service in services])
    return services, time.perf_counter() - start


async def stopAll(reactor: Any, services: list[Any]) -> None:
    # Twisted's ClientService raises RuntimeError if stopService runs inside
    # its own whenConnected callback, which is where an await resumes: leave
    # that callback first.
    await deferLater(reactor, 0, lambda: None)
    await gatherResults([service.stopService() for service in services])


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


async def run(reactor: Any, count: int = 2000, rounds: int = 3) -> list[dict[str, Any]]:
    limit = raiseFileLimit(count + 200)
    count = min(count, limit - 200)
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        contenders = {"twisted": TwistedClientService, "reconnect": ClientService}
        memory: dict[str, list[float]] = {name: [] for name in contenders}
        seconds: dict[str, list[float]] = {name: [] for name in contenders}
        for turn in range(rounds):
            order = list(contenders.items())
            if turn % 2:
                order.reverse()
            for name, serviceClass in order:
                memory[name].append(
                    await memoryPerService(reactor, serviceClass, port, count)
                )
                services, took = await connectAll(reactor, serviceClass, port, count)
                seconds[name].append(took)
                await stopAll(reactor, services)
    finally:
        server.terminate()
        server.wait()
    ours = statistics.median(memory["reconnect"])
    theirs = statistics.median(memory["twisted"])
    return [
        {
            "benchmark": f"scale: memory per connected service ({count} services)",
            "anchor": "twisted ClientService",
            "contender": "reconnect ClientService",
            "anchor_median": round(theirs),
            "contender_median": round(ours),
            "unit": "bytes/service (tracemalloc)",
            "ratio": round(ours / theirs, 3),
            "rounds": rounds,
        },
        {
            "benchmark": f"scale: time until all {count} are connected",
            "anchor": "twisted ClientService",
            "contender": "reconnect ClientService",
            "anchor_median": round(statistics.median(seconds["twisted"]), 3),
            "contender_median": round(statistics.median(seconds["reconnect"]), 3),
            "unit": "s",
            "ratio": round(
                statistics.median(
                    o / t
                    for o, t in zip(
                        seconds["reconnect"], seconds["twisted"], strict=True
                    )
                ),
                3,
            ),
            "rounds": rounds,
        },
    ]
