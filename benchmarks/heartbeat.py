"""
Heartbeats under wandering latency: a SayStuff client with C{heartbeat=1}
(and the default timeout, as long again) talks through a L{ChaosProxy}
whose added delay changes every 250 ms to a random 0-200 ms each way, for
two minutes, mostly idle (one request every 10 s).  A heartbeat taken for
dead would replace the connection: the run reports connections made (1 is
no false alarm), heartbeats sent and requests failed.  Then the proxy
silences the connection both ways, and the run reports how long until the
heartbeat replaced it (bound: heartbeat + timeout + 1 s).

    python -m benchmarks.heartbeat [--seconds 120] [--save]

C{--save} writes C{benchmarks/results/heartbeat.json}.
"""

from __future__ import annotations

import argparse
from typing import Any

from twisted.internet.task import deferLater

from reconnect.saystuff import RestartableLineServer, SayStuffToServerService
from reconnect.testing import ChaosProxy

from ._script import printAndSave


async def run(reactor: Any, seconds: float) -> dict[str, Any]:
    server = RestartableLineServer(reactor)
    port = await server.start()
    proxy = ChaosProxy(reactor, port)
    await proxy.start()
    wandering = proxy.wanderDelay(0.2, every=0.25, seed=15)
    service = SayStuffToServerService(
        endpoint=f"tcp:127.0.0.1:{proxy.port}", reactor=reactor, heartbeat=1.0
    )
    service.startService()
    requests = 0
    try:
        started = reactor.seconds()
        while reactor.seconds() - started < seconds:
            await service.sendToServer(b"request %d" % requests)
            requests += 1
            await deferLater(reactor, 10.0, lambda: None)
        figures: dict[str, Any] = {
            "seconds": seconds,
            "requests": requests,
            "heartbeats": service.heartbeats,
            "connections": service.connections,
            "failed": service.book.failed,
        }
        wandering.stop()
        proxy.delay = 0.0
        connections = service.connections
        proxy.silence()
        silenced = reactor.seconds()
        while service.connections == connections:
            await deferLater(reactor, 0.01, lambda: None)
        figures["silenced -> replaced, s"] = round(reactor.seconds() - silenced, 2)
        figures["bound, s"] = 1.0 + 1.0 + 1.0
    finally:
        if wandering.running:
            wandering.stop()
        await service.stopService()
        await proxy.stop()
        await server.kill()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--save", action="store_true")
    options = parser.parse_args()

    printAndSave(
        lambda reactor: run(reactor, options.seconds), "heartbeat", options.save
    )


if __name__ == "__main__":
    main()
