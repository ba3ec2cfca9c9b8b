"""
The demo: the bundled server, a SayStuff client sending lines without pause,
and the server killed and restarted a few times.  A live status line shows
what the client sees; the summary shows that no line was lost.

Run it as C{reconnect-demo} (or C{python -m reconnect.saystuff._demo}).
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any, Optional, TextIO

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import LoopingCall, deferLater
from twisted.python.failure import Failure

from .._backoff import backoffPolicy
from ._server import RestartableLineServer
from ._service import SayStuffToServerService


class Tally:
    """
    What the demo's client sent and what came back.
    """

    def __init__(self) -> None:
        self.sent = 0
        self.matched = 0
        self.mismatched = 0
        self.failed = 0
        self.outstanding: set[Deferred[bytes]] = set()

    def track(self, line: bytes, reply: Deferred[bytes]) -> None:
        self.sent += 1
        self.outstanding.add(reply)

        def answered(result: object) -> None:
            self.outstanding.discard(reply)
            if result == line:
                self.matched += 1
            elif isinstance(result, bytes):
                self.mismatched += 1
            else:
                self.failed += 1

        reply.addBoth(answered)


class StatusLine:
    """
    Rewrites one terminal line in place; on a pipe, prints a line now and
    then instead.
    """

    def __init__(self, out: TextIO, clock: Any) -> None:
        self._out = out
        self._clock = clock
        self._live = out.isatty()
        self._lastPrinted = -1.0

    def show(self, text: str) -> None:
        if self._live:
            self._out.write("\r\x1b[K" + text)
            self._out.flush()
        elif self._clock.seconds() - self._lastPrinted >= 1.0:
            self._lastPrinted = self._clock.seconds()
            self._out.write(text + "\n")

    def event(self, text: str) -> None:
        if self._live:
            self._out.write("\r\x1b[K")
        self._out.write(text + "\n")
        self._out.flush()


async def runDemo(
    reactor: Any, seconds: float, restarts: int, out: TextIO = sys.stdout
) -> bool:
    """
    Run the demo for about C{seconds}, killing the server C{restarts} times.

    @return: whether every line came back as its own reply.
    """
    server = RestartableLineServer(reactor)
    port = await server.start()
    client = SayStuffToServerService(
        "127.0.0.1",
        port,
        reactor=reactor,
        retryPolicy=backoffPolicy(0.05, 0.5, 2.0, jitter=lambda: 0.0),
        queueSize=100_000,
    )
    tally = Tally()
    status = StatusLine(out, reactor)
    status.event(f"server listening on 127.0.0.1:{port}; client connecting")
    client.startService()

    def sendSome() -> None:
        for _ in range(20):
            line = b"line %d" % tally.sent
            tally.track(line, client.sendToServer(line))
        s = client.status()
        status.show(
            f"[{'up  ' if server.running else 'DOWN'}] client {s['state']:<10} "
            f"sent {tally.sent:>6}  answered {s['answered']:>6}  "
            f"queued {s['queued']:>5}  in flight {s['inFlight']:>4}  "
            f"reconnects {max(0, int(s['connections']) - 1)}"  # type: ignore[call-overload]
        )

    sender = LoopingCall(sendSome)
    sender.clock = reactor
    sender.start(0.01)

    slot = seconds / (restarts + 1)
    for n in range(restarts):
        await deferLater(reactor, slot * 0.6, lambda: None)
        await server.kill()
        status.event(f"killed the server ({n + 1} of {restarts})")
        await deferLater(reactor, slot * 0.4, lambda: None)
        await server.start()
        status.event("restarted the server")
    await deferLater(reactor, slot, lambda: None)
    sender.stop()
    status.event("stopped sending; waiting for the last replies")
    while tally.outstanding:
        await deferLater(reactor, 0.05, lambda: None)
    await client.stopService()
    await server.kill()

    lost = tally.sent - tally.matched - tally.mismatched - tally.failed
    out.write(
        f"\nsummary: sent {tally.sent}, answered with their own line "
        f"{tally.matched}, mismatched {tally.mismatched}, failed {tally.failed}, "
        f"lost {lost}; {client.book.resent} resent after "
        f"{counted(max(0, client.connections - 1), 'reconnect')}\n"
    )
    ok = tally.matched == tally.sent
    out.write("no line was lost.\n" if ok else "SOME LINES WERE LOST.\n")
    return ok


def counted(number: int, noun: str) -> str:
    """
    C{"1 reconnect"}, C{"3 reconnects"}.
    """
    return f"{number} {noun}" + ("" if number == 1 else "s")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="reconnect-demo",
        description="SayStuff against a server that keeps dying; nothing lost.",
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="how long")
    parser.add_argument("--restarts", type=int, default=3, help="server restarts")
    options = parser.parse_args(argv)
    if not (math.isfinite(options.seconds) and options.seconds > 0):
        parser.error(f"--seconds must be a finite number > 0, not {options.seconds}")
    if options.restarts < 0:
        parser.error(f"--restarts must be >= 0, not {options.restarts}")

    from twisted.internet import reactor

    outcome: list[bool] = []

    def crashed(failure: Failure) -> None:
        failure.printTraceback()
        outcome.append(False)

    def run() -> None:
        finished = ensureDeferred(runDemo(reactor, options.seconds, options.restarts))
        finished.addCallbacks(outcome.append, crashed)
        finished.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(run)
    reactor.run()
    return 0 if outcome == [True] else 1


if __name__ == "__main__":
    sys.exit(main())
