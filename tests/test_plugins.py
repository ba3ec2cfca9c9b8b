"""
The twistd plugins: their options, and the real C{twistd} command end to end
(relay over C{--listen}, C{--stdin}, SIGTERM, bad arguments).
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any, Optional

import pytest
import pytest_twisted
from helpers import (
    TWISTD,
    LineCollector,
    StdoutOnly,
    endedWithin,
    freePort,
    sameReactor,
    stop,
    twistd,
    until,
)
from hypothesis import given
from hypothesis import strategies as st
from twisted.application.internet import StreamServerEndpointService
from twisted.internet import reactor
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    TCP6ServerEndpoint,
    connectProtocol,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.python.usage import UsageError

from reconnect.saystuff import SayStuffToServerService
from reconnect.saystuff import _servertap as servertap
from reconnect.saystuff import _tap as tap
from reconnect.saystuff._relay import StdinRelayService

README = Path(__file__).resolve().parent.parent / "README.md"
GUIDE = README.parent / "docs" / "guide.md"


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
        ["--timeout", "-1"],
        ["--timeout", "inf"],
        ["--heartbeat", "0"],
        ["--heartbeat", "often"],
        ["--heartbeat", "1", "--heartbeat-line", ""],
        ["--heartbeat", "1", "--heartbeat-line", "a\nb"],
        ["--heartbeat-line", "caf\u00e9"],
        ["--listen", "nonsense:1"],
        ["--listen", "tcp:notaport"],
        ["--connect", "tcp:host=x"],
        ["--connect", "carrier-pigeon:x"],
        ["--metrics", "nonsense:1"],
        ["--metrics", "tcp:notaport"],
        ["--connect", "tcp:127.0.0.1:99999"],
        ["--listen", "tcp:99999"],
        ["--host", ""],
        ["--connect", "tcp:127.0.0.1:7", "--host", "example.com"],
        ["--connect", "tcp:127.0.0.1:7", "--port", "7"],
        ["--max-clients", "0"],
        ["--max-clients", "lots"],
        ["--client-timeout", "-1"],
        ["--client-timeout", "inf"],
    ],
)
def test_badRelayOptions(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        tap.Options().parseOptions(argv)


def test_stdinNeedsNodaemon() -> None:
    """
    C{--stdin} under a daemonizing twistd is a usage error: a daemon's
    standard input is gone, and its lines would be silently dropped.
    """
    options = tap.Options()
    options.parent = {"nodaemon": False}
    with pytest.raises(UsageError, match="twistd -n"):
        options.parseOptions(["--stdin"])
    options = tap.Options()
    options.parent = {"nodaemon": True, "logger": "x"}
    options.parseOptions(["--stdin"])


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
    assert options["heartbeat"] is None


def test_heartbeatOptions() -> None:
    options = tap.Options()
    options.parseOptions(["--heartbeat", "2.5", "--heartbeat-line", "HELLO"])
    relayed = list(tap.makeService(options))[0]  # type: ignore[call-overload]
    assert relayed._heartbeat == 2.5
    assert relayed._heartbeatLine == b"HELLO"


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


def test_stdinTimeoutByDefault() -> None:
    """
    C{--stdin} waits for each reply for L{tap.STDIN_TIMEOUT} unless
    C{--timeout} says otherwise, and C{--timeout 0} is no limit; the relay
    over C{--listen} has no limit unless given one.
    """

    def timeout(*argv: str) -> Any:
        options = tap.Options()
        options.parent = {"nodaemon": True, "logger": "x"}
        options.parseOptions(list(argv))
        relayed = list(tap.makeService(options))[0]  # type: ignore[call-overload]
        assert relayed.book._timeout == options["timeout"]
        return options["timeout"]

    assert timeout("--stdin") == tap.STDIN_TIMEOUT == 30.0
    assert timeout("--stdin", "--timeout", "2.5") == 2.5
    assert timeout("--stdin", "--timeout", "0") is None
    assert timeout() is None
    assert timeout("--timeout", "4") == 4.0
    assert timeout("--timeout", "0") is None
    seconds = f"{tap.STDIN_TIMEOUT:g}"
    assert f"has waited {seconds} s for its reply" in README.read_text()
    assert f"(default: {seconds} with `--stdin`" in GUIDE.read_text()


@pytest.mark.parametrize(
    "given, kept", [("twistd.pid", ""), ("mine.pid", "mine.pid"), ("", "")]
)
def test_stdinTakesNoDefaultPidfile(given: str, kept: str) -> None:
    """
    C{--stdin} turns off twistd's default pidfile, which would keep a
    second pipe from running in the same folder; a pidfile asked for by
    name is kept.
    """
    options = tap.Options()
    options.parent = {"nodaemon": True, "logger": "x", "pidfile": given}
    options.parseOptions(["--stdin"])
    assert options.parent["pidfile"] == kept
    options = tap.Options()
    options.parent = {"nodaemon": True, "logger": "x", "pidfile": given}
    options.parseOptions([])
    assert options.parent["pidfile"] == given


# -- the real twistd ----------------------------------------------------------


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


async def relayStdin(
    where: Path, input: bytes, *args: str
) -> tuple[Optional[int], StdoutOnly]:
    """
    Run C{twistd saystuff --stdin ARGS} beside a bundled server that it
    reaches as C{--port}, unless C{ARGS} name their own servers (where the
    text C{"{port}"} stands for the bundled one's port); feed it C{input},
    end its input and wait for it to exit.
    """
    port = freePort()
    server = twistd(where, "saystuff-server", "--port", str(port))
    try:
        await until(lambda: b"starting on" in server.output)
        given = [a.replace("{port}", str(port)) for a in args]
        relayArgs = given or ["--port", str(port)]
        relay = twistd(where, "saystuff", *relayArgs, "--stdin", protocol=StdoutOnly())
        assert isinstance(relay, StdoutOnly)
        relay.transport.write(input)  # type: ignore[union-attr]
        relay.transport.closeStdin()  # type: ignore[union-attr]
        code = await endedWithin(relay, 60)
    finally:
        await stop(server)
    return code, relay


@pytest_twisted.ensureDeferred
async def test_stdinEndToEnd(tmp_path: Path) -> None:
    """
    C{--stdin}: lines from standard input, replies on standard output (the
    log goes to standard error); at end of input it waits for the replies
    and exits 0.
    """
    code, relay = await relayStdin(tmp_path, b"alpha\nbeta\n\ngamma")
    assert code == 0, relay.stderr.decode()
    assert relay.stdout == b"alpha\nbeta\n\ngamma\n"
    assert b"Traceback" not in relay.stderr


@pytest_twisted.ensureDeferred
async def test_stdinErrorLineMeansFailureStatus(tmp_path: Path) -> None:
    """
    At end of input, if any line got an C{ERROR} line instead of a reply,
    the exit status is 1.  A line over the limit (here 200,000 bytes, so
    that it arrives in several reads) gets its C{ERROR} line and the lines
    after it are relayed as usual.
    """
    lines = (
        b"alpha\n"
        + b"x" * 200_000
        + b"\n"
        + b"".join(b"after %d\n" % n for n in range(1002))
    )
    code, relay = await relayStdin(tmp_path, lines)
    assert code == 1, relay.stderr.decode()
    assert relay.stdout.splitlines() == [
        b"alpha",
        b"ERROR ValueError: line over the limit of 16384 bytes",
    ] + [b"after %d" % n for n in range(1002)]


@pytest_twisted.ensureDeferred
async def test_stdinShutdownAnswersEveryLine(tmp_path: Path) -> None:
    """
    SIGTERM while lines wait for a server that is down: each of them gets
    its C{ERROR} line on standard output before the process ends, and the
    exit status is not 0.
    """
    relay = twistd(
        tmp_path,
        "saystuff",
        "--port",
        str(freePort()),
        "--stdin",
        protocol=StdoutOnly(),
    )
    assert isinstance(relay, StdoutOnly)
    relay.transport.write(b"one\ntwo\n")  # type: ignore[union-attr]
    await until(lambda: b"Scheduling retry" in relay.stderr)
    relay.transport.signalProcess("TERM")  # type: ignore[union-attr]
    code = await relay.ended
    assert code != 0 or relay.signal == 15
    assert (
        relay.stdout.splitlines()
        == [b"ERROR ServiceStoppedError: the service was stopped"] * 2
    )
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


@given(
    option=st.sampled_from(
        [
            "--port",
            "--initial-delay",
            "--max-delay",
            "--factor",
            "--queue-size",
            "--timeout",
            "--listen",
            "--connect",
            "--metrics",
        ]
    ),
    value=st.text(max_size=12),
)
def test_anyRelayOptionValueIsUsageOrAccepted(option: str, value: str) -> None:
    """
    Any text given to any option either parses or is a usage error: never
    another exception.
    """
    try:
        tap.Options().parseOptions([option, value])
    except UsageError:
        pass


@pytest.mark.parametrize(
    "argv, option",
    [
        (["saystuff-server", "--port", "{busy}"], "--port {busy}"),
        (
            ["saystuff", "--listen", "tcp:{busy}:interface=127.0.0.1"],
            "--listen tcp:{busy}:interface=127.0.0.1",
        ),
        (
            ["saystuff", "--listen", "tcp:0:interface=127.0.0.1"]
            + ["--metrics", "tcp:{busy}:interface=127.0.0.1"],
            "--metrics tcp:{busy}:interface=127.0.0.1",
        ),
    ],
)
@pytest_twisted.ensureDeferred
async def test_busyPortEndsTheProcess(
    tmp_path: Path, argv: list[str], option: str
) -> None:
    """
    A port that cannot be listened on ends twistd at start-up with exit
    status 1 and one line saying why, which names the option that asked
    for it, not a traceback and a process that listens nowhere.
    """
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = str(taken.getsockname()[1])
        process = twistd(tmp_path, *(a.replace("{busy}", busy) for a in argv))
        code = await process.ended
    assert code == 1
    assert b"Traceback" not in process.output, process.output.decode()
    [line] = [x for x in process.output.splitlines() if b"error: " in x]
    named = option.replace("{busy}", busy)
    assert f"error: {named}: Couldn't listen on ".encode() in line, line
    assert f":{busy}".encode() in line


@pytest.mark.parametrize("options", [tap.Options, servertap.Options])
def test_helpHasNoRunsOfSpaces(options: type[Any]) -> None:
    """
    Each option's help reads as one sentence: no line breaks of a docstring
    turned into runs of spaces.
    """
    usage = str(options())
    # Option names fill the first 24 columns; the help text follows.
    helpTexts = [line[24:] for line in usage.splitlines() if line.startswith("  ")]
    assert helpTexts
    for text in helpTexts:
        assert not re.search(r"\S {2,}\S", text), text


def test_tlsWithoutPyOpenSSLIsUsageMessage() -> None:
    """
    C{--connect tls:...} without TLS support installed names what to
    install, in one usage message.
    """
    try:
        import OpenSSL  # noqa: F401
    except ImportError:
        with pytest.raises(UsageError, match=r"reconnect\[tls\]"):
            tap.Options().parseOptions(["--connect", "tls:example.com:443"])
    else:
        tap.Options().parseOptions(["--connect", "tls:example.com:443"])


def test_serverListensOnIPv6() -> None:
    """
    C{saystuff-server --interface} takes an IPv6 address and listens there.
    """
    options = servertap.Options()
    options.parseOptions(["--interface", "::1", "--port", "7"])
    service = servertap.makeService(options)
    assert isinstance(service.endpoint, TCP6ServerEndpoint)  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1"])
def test_demoRefusesBadSeconds(value: str, capsys: Any) -> None:
    """
    C{reconnect-demo --seconds} takes a finite number above 0, and says so.
    """
    from reconnect.saystuff._demo import main

    with pytest.raises(SystemExit) as exited:
        main(["--seconds", value])
    assert exited.value.code == 2
    assert "--seconds must be a finite number > 0" in capsys.readouterr().err


@pytest.mark.parametrize("shuffle", [[], ["--shuffle"]])
def test_severalConnectsFailOver(shuffle: list[str]) -> None:
    """
    Several C{--connect}, most preferred first, make the relay connect
    through a L{FailoverEndpoint} over them (shuffled with C{--shuffle});
    one C{--connect} is that endpoint alone, as before.
    """
    from reconnect import FailoverEndpoint

    first, second = "tcp:host=127.0.0.1:port=7001", "tcp:host=127.0.0.1:port=7002"
    options = tap.Options()
    options.parseOptions(["--connect", first, "-c", second, *shuffle])
    relayed = list(tap.makeService(options))[0]  # type: ignore[call-overload]
    assert isinstance(relayed.endpoint, FailoverEndpoint)
    assert sorted(h.description for h in relayed.endpoint.health()) == [
        "tcp:127.0.0.1:7001",
        "tcp:127.0.0.1:7002",
    ]
    options = tap.Options()
    options.parseOptions(["--connect", first])
    relayed = list(tap.makeService(options))[0]  # type: ignore[call-overload]
    assert not isinstance(relayed.endpoint, FailoverEndpoint)


def test_shuffleNeedsSeveralConnects() -> None:
    with pytest.raises(UsageError, match="--shuffle"):
        tap.Options().parseOptions(["--connect", "tcp:127.0.0.1:7", "--shuffle"])


@pytest_twisted.ensureDeferred
async def test_relayFailsOverToTheLiveServer(tmp_path: Path) -> None:
    """
    C{twistd saystuff} with a dead server first and a live one second:
    the lines are answered through the live one.  With C{--debug-events}
    the log also says that the dead one failed.
    """
    code, relay = await relayStdin(
        tmp_path,
        b"one\ntwo\n",
        "--debug-events",
        "--connect",
        f"tcp:host=127.0.0.1:port={freePort()}",
        "--connect",
        "tcp:host=127.0.0.1:port={port}",
    )
    assert code == 0, relay.stderr.decode()
    assert relay.stdout == b"one\ntwo\n"
    assert b"Connecting through tcp:127.0.0.1:" in relay.stderr
    assert b"failed: Connection was refused" in relay.stderr


def test_failbackOption() -> None:
    """
    C{--failback SECONDS} goes to the failover endpoint; alone with one
    C{--connect}, it is a usage error.
    """
    options = tap.Options()
    options.parseOptions(["-c", "tcp:127.0.0.1:1", "-c", "tcp:127.0.0.1:2"])
    assert options["failback"] is None
    options = tap.Options()
    options.parseOptions(
        ["-c", "tcp:127.0.0.1:1", "-c", "tcp:127.0.0.1:2", "--failback", "30"]
    )
    relayed = list(tap.makeService(options))[0]  # type: ignore[call-overload]
    assert relayed.endpoint._failback == 30.0
    with pytest.raises(UsageError, match="--failback"):
        tap.Options().parseOptions(["-c", "tcp:127.0.0.1:1", "--failback", "30"])
    with pytest.raises(UsageError, match="failback"):
        tap.Options().parseOptions(
            ["-c", "tcp:127.0.0.1:1", "-c", "tcp:127.0.0.1:2", "--failback", "0"]
        )


# -- the synopses ----------------------------------------------------------------

PLUGINS = [("saystuff", tap.Options), ("saystuff-server", servertap.Options)]


def optionNames(options: type[Any]) -> set[str]:
    """
    The long names of every option C{options} takes, but C{--help} and
    C{--version}, which every twistd plugin takes.
    """
    return {name.rstrip("=") for name in options().longOpt} - {"help", "version"}


def readmeSynopsis(command: str) -> str:
    """
    README's synopsis of C{twistd -n COMMAND}: its line in the block under
    I{The twistd plugins} and the indented lines that continue it, as one
    line.
    """
    text = README.read_text().split("### The twistd plugins", 1)[1]
    block = text.split("```", 2)[1]
    found: list[str] = []
    for line in block.splitlines():
        if line.startswith("twistd "):
            if found:
                break
            if line.split()[2] == command:
                found.append(line)
        elif found and line.startswith(" "):
            found.append(line)
    return " ".join(" ".join(found).split())


@pytest.mark.parametrize("command, options", PLUGINS)
def test_synopsisNamesEveryOption(command: str, options: type[Any]) -> None:
    """
    The usage line of C{twistd COMMAND --help} names every option the
    plugin takes, and no other, each with its default if it has one.
    """
    assert set(re.findall(r"--([\w-]+)", options.synopsis)) == optionNames(options)
    defaults = options()
    defaults.parseOptions([])
    for name, shown in re.findall(r"\[--([\w-]+) ([^\] ]+)", options.synopsis):
        if shown.isupper() and shown != defaults[name]:
            continue  # a placeholder, such as SECONDS
        assert shown == str(defaults[name]) or float(shown) == defaults[name], name


@pytest.mark.parametrize("command, options", PLUGINS)
def test_readmeSynopsisIsTheUsageLine(command: str, options: type[Any]) -> None:
    """
    README's synopsis of each plugin is the one C{--help} prints.
    """
    assert readmeSynopsis(command) == f"twistd -n {command} {options.synopsis}"


def test_guideListsEveryOption() -> None:
    """
    The guide's table of the relay's options has a row for each of them.
    """
    section = GUIDE.read_text().split("## 8. The plugin's options", 1)[1]
    table = section.split("\n## ", 1)[0]
    firstCells = [line.split("|")[1] for line in table.splitlines() if "|" in line]
    listed = set(re.findall(r"`--([\w-]+)", " ".join(firstCells)))
    assert listed == optionNames(tap.Options)


class Silent(Protocol):
    """
    A server that accepts and never answers.
    """


@pytest_twisted.ensureDeferred
async def test_stdinEndsAgainstASilentServer(tmp_path: Path) -> None:
    """
    C{--stdin} against a server that accepts and never answers ends, once
    its per-line deadline passes, with an C{ERROR} line for each line and
    exit status 1.
    """
    silent = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        Factory.forProtocol(Silent)
    )
    try:
        port = silent.getHost().port  # type: ignore[attr-defined]
        relay = twistd(
            tmp_path,
            "saystuff",
            "--port",
            str(port),
            "--timeout",
            "0.5",
            "--stdin",
            protocol=StdoutOnly(),
        )
        assert isinstance(relay, StdoutOnly)
        relay.transport.write(b"one\ntwo\n")  # type: ignore[union-attr]
        relay.transport.closeStdin()  # type: ignore[union-attr]
        code = await endedWithin(relay, 30)
    finally:
        await silent.stopListening()
    assert code == 1, relay.stderr.decode()
    assert [line.split(b":")[0] for line in relay.stdout.splitlines()] == [
        b"ERROR RequestTimedOut"
    ] * 2
    assert b"Traceback" not in relay.stderr


@pytest_twisted.ensureDeferred
async def test_stdinBesideAnotherTwistd(tmp_path: Path) -> None:
    """
    C{twistd -n saystuff --stdin}, with no C{--pidfile=}, runs in a folder
    where another twistd holds C{twistd.pid}, and leaves that file alone.
    """
    pidfile = tmp_path / "twistd.pid"
    pidfile.write_text(str(os.getpid()))
    port = freePort()
    server = twistd(tmp_path, "saystuff-server", "--port", str(port))
    try:
        await until(lambda: b"starting on" in server.output)
        relay = StdoutOnly()
        argv = [TWISTD, "-n", *sameReactor(), "saystuff", "--port", str(port)]
        reactor.spawnProcess(
            relay, TWISTD, [*argv, "--stdin"], env=dict(os.environ), path=str(tmp_path)
        )
        relay.transport.write(b"one\n")  # type: ignore[union-attr]
        relay.transport.closeStdin()  # type: ignore[union-attr]
        code = await endedWithin(relay, 60)
    finally:
        await stop(server)
    assert code == 0, relay.stderr.decode()
    assert relay.stdout == b"one\n"
    assert pidfile.read_text() == str(os.getpid())


EARLIER_HANDLER = """
import atexit
import sys

from twisted.logger import textFileLogObserver


def observer():
    atexit.register(open, "{marker}", "w")
    return textFileLogObserver(sys.stderr)
"""


@pytest_twisted.ensureDeferred
async def test_stdinStatusLetsEarlierExitHandlersRun(tmp_path: Path) -> None:
    """
    The exit status of C{--stdin} (1: a line got an C{ERROR} line) is set
    without cutting short the exit handlers registered before it: here
    one that a log observer registers at start-up, as logging's shutdown
    and coverage's are.
    """
    marker = tmp_path / "earlier handler ran"
    (tmp_path / "earlierhandler.py").write_text(
        EARLIER_HANDLER.replace("{marker}", str(marker))
    )
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    relay = StdoutOnly()
    argv = [TWISTD, "--pidfile=", "--logger=earlierhandler.observer", "-n"]
    argv += [*sameReactor(), "saystuff", "--port", str(freePort())]
    reactor.spawnProcess(
        relay,
        TWISTD,
        [*argv, "--timeout", "0.2", "--stdin"],
        env=dict(os.environ, PYTHONPATH=path),
        path=str(tmp_path),
    )
    relay.transport.write(b"one\n")  # type: ignore[union-attr]
    relay.transport.closeStdin()  # type: ignore[union-attr]
    code = await endedWithin(relay, 60)
    assert code == 1, relay.stderr.decode()
    assert relay.stdout.startswith(b"ERROR RequestTimedOut")
    assert marker.exists(), relay.stderr.decode()
