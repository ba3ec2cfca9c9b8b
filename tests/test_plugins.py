"""
The twistd plugins: their options, and the real C{twistd} command end to end
(relay over C{--listen}, C{--stdin}, SIGTERM, bad arguments).
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.application.internet import StreamServerEndpointService
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.protocols.basic import LineReceiver
from twisted.python.usage import UsageError

from reconnect.saystuff import SayStuffToServerService
from reconnect.saystuff import _servertap as servertap
from reconnect.saystuff import _tap as tap
from reconnect.saystuff._relay import StdinRelayService

TWISTD = str(Path(sys.executable).parent / "twistd")


# -- options --------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "http"],
        ["--port", "0"],
        ["--port", "65536"],
        ["--initial-delay", "-1"],
        ["--initial-delay", "soon"],
        ["--max-delay", "nan"],
        ["--initial-delay", "5", "--max-delay", "1"],
        ["--factor", "0.5"],
        ["--queue-size", "0"],
        ["--queue-size", "many"],
        ["--timeout", "0"],
        ["--timeout", "inf"],
        ["--listen", "nonsense:1"],
        ["--listen", "tcp:notaport"],
        ["--connect", "tcp:host=x"],
        ["--connect", "carrier-pigeon:x"],
    ],
)
def test_badRelayOptions(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        tap.Options().parseOptions(argv)


@pytest.mark.parametrize(
    "argv", [["--port", "x"], ["--port", "-3"], ["--interface", "localhost:1"]]
)
def test_badServerOptions(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        servertap.Options().parseOptions(argv)


def test_relayDefaults() -> None:
    options = tap.Options()
    options.parseOptions([])
    assert options["host"] == "127.0.0.1"
    assert options["port"] == 65432
    assert options["listen"] == [tap.DEFAULT_LISTEN]
    assert options["timeout"] is None
    assert options["queue-size"] == 1000


def test_relayServiceShape() -> None:
    options = tap.Options()
    options.parseOptions(
        ["--listen", "tcp:0", "--listen", "unix:/tmp/x.sock", "--stdin", "-p", "7"]
    )
    top = tap.makeService(options)
    children = list(top)  # type: ignore[call-overload]
    assert isinstance(children[0], SayStuffToServerService)
    assert sum(isinstance(c, StreamServerEndpointService) for c in children) == 2
    assert isinstance(children[-1], StdinRelayService)


def test_serverService() -> None:
    options = servertap.Options()
    options.parseOptions(["--port", "7007"])
    service = servertap.makeService(options)
    assert service.endpoint._port == 7007  # type: ignore[attr-defined]
    assert service.endpoint._interface == "127.0.0.1"  # type: ignore[attr-defined]


# -- the real twistd ----------------------------------------------------------


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


def twistd(where: Path, *args: str, protocol: Process | None = None) -> Process:
    process = protocol or Process()
    reactor.spawnProcess(
        process,
        TWISTD,
        [TWISTD, "--pidfile=", "-n", *args],
        env=dict(os.environ),
        path=str(where),
    )
    return process


def freePort() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def until(predicate: Any, timeout: float = 20.0) -> None:
    waited = 0.0
    while not predicate():
        assert waited < timeout, "timed out waiting"
        await deferLater(reactor, 0.02, lambda: None)
        waited += 0.02


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


@pytest_twisted.ensureDeferred
async def test_relayEndToEnd(tmp_path: Path) -> None:
    """
    A local client's lines reach the bundled server through C{twistd
    saystuff --listen}, and the replies come back to it; SIGTERM stops both
    processes cleanly.
    """
    serverPort, relayPort = freePort(), freePort()
    server = twistd(tmp_path, "saystuff-server", "--port", str(serverPort))
    relay = twistd(
        tmp_path,
        "saystuff",
        "--port",
        str(serverPort),
        "--initial-delay",
        "0.1",
        "--max-delay",
        "0.5",
        "--listen",
        f"tcp:{relayPort}:interface=127.0.0.1",
    )
    try:
        await until(lambda: b"starting on" in server.output)
        await until(lambda: b"Connected to" in relay.output)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", relayPort)
        client = await connectProtocol(endpoint, LineCollector())
        client.transport.write(b"one\r\ntwo\nthree\r\n")  # type: ignore[union-attr]
        await until(lambda: len(client.lines) == 3)
        assert client.lines == [b"one", b"two", b"three"]
        client.transport.loseConnection()  # type: ignore[union-attr]
    finally:
        await stop(relay)
        await stop(server)


@pytest_twisted.ensureDeferred
async def test_stdinEndToEnd(tmp_path: Path) -> None:
    """
    C{--stdin}: lines from standard input, replies on standard output (the
    log goes to standard error); at end of input it waits for the replies
    and exits 0.
    """
    serverPort = freePort()
    server = twistd(tmp_path, "saystuff-server", "--port", str(serverPort))
    try:
        await until(lambda: b"starting on" in server.output)
        relay = twistd(
            tmp_path,
            "saystuff",
            "--port",
            str(serverPort),
            "--stdin",
            protocol=StdoutOnly(),
        )
        assert isinstance(relay, StdoutOnly)
        relay.transport.write(b"alpha\nbeta\n\ngamma")  # type: ignore[union-attr]
        relay.transport.closeStdin()  # type: ignore[union-attr]
        code = await relay.ended
    finally:
        await stop(server)
    assert code == 0, relay.stderr.decode()
    assert relay.stdout == b"alpha\nbeta\n\ngamma\n"
    assert b"Traceback" not in relay.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["saystuff", "--port", "nine"],
        ["saystuff", "--listen", "bogus"],
        ["saystuff", "--initial-delay", "-2"],
        ["saystuff-server", "--port", "99999"],
    ],
)
@pytest_twisted.ensureDeferred
async def test_badArgumentIsUsageMessage(tmp_path: Path, argv: list[str]) -> None:
    process = twistd(tmp_path, *argv)
    code = await process.ended
    assert code != 0
    assert b"Traceback" not in process.output
    assert b"Usage:" in process.output or b"twistd" in process.output
