"""
Soak: a SayStuff client under steady load against a server that is killed
and restarted every few seconds, for some minutes.  Reports whether anything
was lost and how Python's memory (tracemalloc, after a collection) moved
from the first restart to the last: it should stay flat.

    python -m benchmarks.soak [--minutes 2] [--every 3]

Not part of C{python -m benchmarks} (it takes minutes by design) nor of the
unit tests.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
import tracemalloc
from array import array
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import deferLater, react
from twisted.logger import globalLogBeginner

from reconnect.saystuff import RestartableLineServer, SayStuffToServerService


async def soak(reactor: Any, minutes: float, every: float) -> dict[str, Any]:
    server = RestartableLineServer(reactor)
    port = await server.start()
    service = SayStuffToServerService(
        "127.0.0.1", port, reactor=reactor, retryPolicy=lambda n: 0.05, queueSize=100000
    )
    service.startService()
    sent = answered = mismatched = failed = 0
    outstanding: set[Deferred[bytes]] = set()

    def done(reply: Any, line: bytes, request: Deferred[bytes]) -> None:
        nonlocal answered, mismatched, failed
        outstanding.discard(request)
        if isinstance(reply, bytes):
            answered += 1
            mismatched += reply != line
        else:
            failed += 1

    tracemalloc.start()
    # Preallocated machine integers: see restarts().
    samples = array("q", bytes(8 * (int(minutes * 60 / every) + 2)))
    taken = 0
    end = time.monotonic() + minutes * 60
    nextRestart = time.monotonic() + every
    while time.monotonic() < end:
        for _ in range(50):
            line = b"soak %d" % (sent,)
            sent += 1
            request = service.sendToServer(line)
            outstanding.add(request)
            request.addBoth(done, line, request)
        await deferLater(reactor, 0.01, lambda: None)
        if time.monotonic() >= nextRestart:
            await server.kill()
            await deferLater(reactor, 0.2, lambda: None)
            await server.start()
            gc.collect()
            samples[taken] = tracemalloc.get_traced_memory()[0]
            taken += 1
            nextRestart += every
    while outstanding:
        await deferLater(reactor, 0.05, lambda: None)
    tracemalloc.stop()
    status = service.status()
    await service.stopService()
    await server.kill()
    return {
        "minutes": minutes,
        "restarts": taken,
        "sent": sent,
        "answered": answered,
        "mismatched": mismatched,
        "failed": failed,
        "connections": status["connections"],
        "memory at first restart (bytes)": samples[0] if taken else None,
        "memory at last restart (bytes)": samples[taken - 1] if taken else None,
        "memory samples": list(samples[:taken]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak")
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument(
        "--every", type=float, default=3.0, help="seconds between restarts"
    )
    options = parser.parse_args()
    globalLogBeginner.beginLoggingTo([], discardBuffer=True, redirectStandardIO=False)

    async def run(reactor: Any) -> None:
        print(json.dumps(await soak(reactor, options.minutes, options.every), indent=2))

    react(lambda reactor: ensureDeferred(run(reactor)))


if __name__ == "__main__":
    main()


async def restarts(reactor: Any, count: int = 200, warmup: int = 50) -> dict[str, Any]:
    """
    Memory per server restart, after warm-up: a SayStuff client sends a
    few requests, the server is killed and started again, the client
    reconnects; Python's memory (tracemalloc, after a collection) is read
    after each restart.  The figure is the slope of a least-squares line
    through the C{count} readings after C{warmup} restarts: the reactor
    drops cancelled timers in batches and dictionaries grow in steps, so
    two single readings would mislead.  Flat is 0 bytes per restart.
    """
    server = RestartableLineServer(reactor)
    port = await server.start()
    service = SayStuffToServerService(
        "127.0.0.1", port, reactor=reactor, retryPolicy=lambda n: 0.01
    )
    service.startService()
    # Preallocated, and of machine integers: a list of int objects would
    # grow by about 40 bytes a reading, which is what an earlier version of
    # this soak reported as "+32 B per restart".
    samples = array("q", bytes(8 * count))
    tracemalloc.start()
    try:
        for restart in range(warmup + count):
            replies = [service.sendToServer(b"soak %d" % n) for n in range(20)]
            for reply in replies:
                await reply
            await server.kill()
            await server.start()
            await service.clientService.whenConnected()
            await deferLater(reactor, 0, lambda: None)
            gc.collect()
            if restart >= warmup:
                samples[restart - warmup] = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        await service.stopService()
        await server.kill()
    slope = statistics.linear_regression(range(len(samples)), samples).slope
    return {
        "benchmark": f"soak: memory per server restart ({count} restarts)",
        "unit": "bytes/restart after warm-up (tracemalloc, least-squares slope)",
        "value": round(slope, 1),
        "first..last": f"{samples[0]}..{samples[-1]}",
        "restarts": count,
        "warm-up": warmup,
    }
