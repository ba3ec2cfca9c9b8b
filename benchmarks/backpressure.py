"""
Back-pressure through the relay: a local client sends lines as fast as the
relay takes them, through C{twistd saystuff --listen} (its own process, all
defaults), to a line server that answers at a fixed rate in bytes a second.

Reports whether every line came back as its own reply (nothing refused with
an C{ERROR} line, nothing lost, in order), and how much the relay's memory
grew: its peak resident size (C{VmHWM}) over its size once started, against
the bound C{queueBytes} (8 MiB by default) + 16 MiB.

    python -m benchmarks.backpressure [--megabytes 100] [--rate 1] [--save]

The issue's figure is 100 MB at 1 MB/s (100 s); tests/test_delivery_loopback.py
runs a smaller one through the same code.  C{--save} writes
C{benchmarks/results/backpressure.json}.  Linux only (it reads /proc).
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path
from typing import Any, Optional

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.internet.task import LoopingCall, deferLater
from zope.interface import implementer

from ._script import printAndSave

TWISTD = str(Path(sys.executable).parent / "twistd")
MiB = 1024 * 1024
LINE = 1000
TICK = 0.01


class ThrottledEcho(Protocol):
    """
    Answers each CRLF line with itself, at most C{rate} bytes a second: it
    stops reading while it is behind, so the sender's TCP window fills.
    """

    def __init__(self, rate: float, reactor: Any) -> None:
        self._rate = rate
        self._reactor = reactor
        self._buffer = bytearray()
        self._paused = False
        self._ticking = LoopingCall(self._tick)
        self._ticking.clock = reactor

    def connectionMade(self) -> None:
        self._ticking.start(TICK, now=False)

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > 256 * 1024 and not self._paused:
            self._paused = True
            self.transport.pauseProducing()  # type: ignore[union-attr]

    def _tick(self) -> None:
        allowance = int(self._rate * TICK)
        end = self._buffer.rfind(b"\r\n", 0, allowance)
        if end < 0:
            return
        answered = bytes(self._buffer[: end + 2])
        del self._buffer[: end + 2]
        self.transport.write(answered)  # type: ignore[union-attr]
        if self._paused and len(self._buffer) < 64 * 1024:
            self._paused = False
            self.transport.resumeProducing()  # type: ignore[union-attr]

    def connectionLost(self, reason: object = None) -> None:
        if self._ticking.running:
            self._ticking.stop()


@implementer(IPushProducer)
class Sender(Protocol):
    """
    Writes C{count} numbered lines of C{LINE} bytes as fast as the transport
    takes them (pausing when its buffer is full), and checks the replies.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self.sent = 0
        self.replies = 0
        self.wrong = 0
        self.errors = 0
        self._buffer = b""
        self._paused = False
        self.done: Deferred[None] = Deferred()

    def line(self, n: int) -> bytes:
        head = b"%d " % n
        return head + b"x" * (LINE - len(head))

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]
        self.resumeProducing()

    def resumeProducing(self) -> None:
        self._paused = False
        while not self._paused and self.sent < self.count:
            batch = min(64, self.count - self.sent)
            lines = [self.line(self.sent + i) for i in range(batch)]
            self.sent += batch
            self.transport.write(b"\n".join(lines) + b"\n")  # type: ignore[union-attr]

    def pauseProducing(self) -> None:
        self._paused = True

    def stopProducing(self) -> None:
        self._paused = True

    def dataReceived(self, data: bytes) -> None:
        lines = (self._buffer + data).split(b"\r\n")
        self._buffer = lines.pop()
        for reply in lines:
            if reply.startswith(b"ERROR"):
                self.errors += 1
            elif reply != self.line(self.replies):
                self.wrong += 1
            self.replies += 1
        if self.replies >= self.count and not self.done.called:
            self.done.callback(None)

    def connectionLost(self, reason: object = None) -> None:
        if not self.done.called:
            self.done.callback(None)


class Relay(ProcessProtocol):
    def __init__(self) -> None:
        self.output = b""
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason: object) -> None:
        self.ended.callback(None)


def freePort() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def memory(pid: int) -> dict[str, int]:
    """
    The process's resident size now and at its peak, in bytes.
    """
    fields = {}
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = row.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


async def run(
    reactor: Any, megabytes: float, rate: float, args: Optional[list[str]] = None
) -> dict[str, Any]:
    """
    Send C{megabytes} MB through a relay to a server answering C{rate}
    MB/s; return the figures.
    """
    serverPort, relayPort = freePort(), freePort()
    listening = reactor.listenTCP(
        serverPort,
        Factory.forProtocol(lambda: ThrottledEcho(rate * 1e6, reactor)),
        interface="127.0.0.1",
    )
    relay = Relay()
    process = reactor.spawnProcess(
        relay,
        TWISTD,
        [
            TWISTD,
            "--pidfile=",
            "-n",
            "saystuff",
            "--connect",
            f"tcp:127.0.0.1:{serverPort}",
            "--listen",
            f"tcp:{relayPort}:interface=127.0.0.1",
            *(args or []),
        ],
        env=None,
    )
    try:
        for _ in range(200):
            if b"Connected to" in relay.output:
                break
            await deferLater(reactor, 0.05, lambda: None)
        else:
            raise RuntimeError(relay.output.decode())
        before = memory(process.pid)["VmRSS"]
        count = int(megabytes * 1e6 / LINE)
        sender = Sender(count)
        started = reactor.seconds()
        await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", relayPort), sender
        )
        await sender.done
        seconds = reactor.seconds() - started
        peak = memory(process.pid)["VmHWM"]
        sender.transport.loseConnection()  # type: ignore[union-attr]
    finally:
        process.signalProcess("TERM")
        await relay.ended
        await listening.stopListening()
    growth = peak - before
    return {
        "megabytes": megabytes,
        "server MB/s": rate,
        "lines": count,
        "answered": sender.replies - sender.errors - sender.wrong,
        "refused": sender.errors,
        "wrong": sender.wrong,
        "seconds": round(seconds, 1),
        "relay RSS at start MiB": round(before / MiB, 1),
        "relay RSS growth MiB": round(growth / MiB, 1),
        "bound MiB": 8 + 16,
        "within bound": growth < 24 * MiB,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=float, default=100.0)
    parser.add_argument("--rate", type=float, default=1.0, help="server MB/s")
    parser.add_argument("--save", action="store_true")
    options = parser.parse_args()

    printAndSave(
        lambda reactor: run(reactor, options.megabytes, options.rate),
        "backpressure",
        options.save,
    )


if __name__ == "__main__":
    main()
