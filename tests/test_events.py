"""
The structured log events and the counters: what they say through whole
reconnect cycles, and that docs/events.md tells the truth about them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from helpers import ResolvingMemoryReactor, freePort, stop, twistd, until
from pytest_twisted import ensureDeferred
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.logger import LogLevel, globalLogPublisher

from reconnect import (
    ClientService,
    getDebugEvents,
    limitRetries,
    setDebugEvents,
)
from reconnect.saystuff import RestartableLineServer, SayStuffToServerService
from reconnect.testing import FakeEndpoint

DOCS = Path(__file__).parent.parent / "docs" / "events.md"
COMMON = {"reconnectEvent", "endpoint", "target", "fromState", "toState"}
FAILOVER_COMMON = {"reconnectEvent", "target", "via"}
FAILOVER_EVENTS = {
    "endpointFailed",
    "endpointCooling",
    "endpointChosen",
    "endpointBack",
}


def documentedEvents() -> dict[str, dict[str, Any]]:
    """
    The table in docs/events.md, by event name.
    """
    rows = {}
    cell = re.compile(r"`([^`]*)`")
    for line in DOCS.read_text().splitlines():
        if not line.startswith("| `"):
            continue
        name, level, fmt, fields = (c.strip() for c in line.strip("|").split("|"))
        rows[cell.findall(name)[0]] = {
            "level": LogLevel.levelWithName(level),
            "format": cell.findall(fmt)[0],
            "fields": set(cell.findall(fields)),
        }
    return rows


DOCUMENTED = documentedEvents()


@pytest.fixture
def debugEvents() -> Iterator[None]:
    """
    Debug events on for the test, as they were after it.
    """
    before = getDebugEvents()
    setDebugEvents(True)
    yield
    setDebugEvents(before)


@pytest.fixture
def events(debugEvents: None) -> Iterator[list[dict[str, Any]]]:
    """
    Every event that carries C{reconnectEvent}, as it is emitted, debug
    events included.
    """
    caught: list[dict[str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        if "reconnectEvent" in event:
            caught.append(event)

    globalLogPublisher.addObserver(observe)
    yield caught
    globalLogPublisher.removeObserver(observe)


def checkDocumented(event: dict[str, Any]) -> None:
    """
    The event is in the table, with its level, format and fields.
    """
    name = event["reconnectEvent"]
    row = DOCUMENTED[name]
    assert event["log_level"] == row["level"], event
    assert event["log_format"] == row["format"], event
    common = FAILOVER_COMMON if name in FAILOVER_EVENTS else COMMON
    for field in common | row["fields"]:
        assert field in event, (field, event)


def transitions(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["reconnectEvent"], e["fromState"], e["toState"]) for e in events]


def test_tableCoversTheMachine() -> None:
    """
    The tables document the twenty-four events the package emits, no more.
    """
    assert (
        set(DOCUMENTED)
        == {
            "attempt",
            "connected",
            "attemptFailed",
            "disconnected",
            "failingOver",
            "gaveUp",
            "stopping",
            "restarting",
            "reconnecting",
            "dropping",
            "stopped",
            "idleTimeout",
            "callbackFailed",
            "handingOver",
            "handOverFailed",
            "draining",
            "heartbeatTimeout",
            "keepAliveSkipped",
            "protocolError",
            "lostInFlight",
        }
        | FAILOVER_EVENTS
    )


def test_cycleOnClock(events: list[dict[str, Any]]) -> None:
    """
    Start, a failed attempt, a connection, its loss, a reconnect, a stop
    with a restart while stopping, and a give-up: each transition emits its
    event, as documented, with the states it joins.
    """
    clock = Clock()
    endpoint = FakeEndpoint()
    service = ClientService(
        endpoint,
        Factory.forProtocol(Protocol),
        retryPolicy=limitRetries(lambda n: 2.0, 1),
        clock=clock,
    )
    service.startService()
    endpoint.last.fail(ConnectionRefusedError())
    clock.advance(2.0)
    endpoint.last.succeed()
    endpoint.last.lose()
    clock.advance(2.0)
    endpoint.last.succeed()
    stopping = service.stopService()
    service.startService()
    endpoint.last.lose()
    assert stopping.called
    endpoint.last.fail(ConnectionRefusedError())
    clock.advance(2.0)
    endpoint.last.fail()
    service.stopService()

    for event in events:
        checkDocumented(event)
    assert transitions(events) == [
        ("attempt", "init", "connecting"),
        ("attemptFailed", "connecting", "waiting"),
        ("attempt", "waiting", "connecting"),
        ("connected", "connecting", "connected"),
        ("disconnected", "connected", "waiting"),
        ("attempt", "waiting", "connecting"),
        ("connected", "connecting", "connected"),
        ("stopping", "connected", "disconnecting"),
        ("restarting", "disconnecting", "restarting"),
        ("stopped", "restarting", "connecting"),
        ("attempt", "restarting", "connecting"),
        ("attemptFailed", "connecting", "waiting"),
        ("attempt", "waiting", "connecting"),
        ("gaveUp", "connecting", "gaveUp"),
        ("stopped", "gaveUp", "stopped"),
    ]
    failed = events[1]
    assert failed["attempt"] == 1 and failed["delay"] == 2.0
    assert failed["failure"].check(ConnectionRefusedError)
    assert "refused" in failed["reason"]
    assert events[3]["peer"] is not None
    assert events[4]["peer"] == events[3]["peer"]
    assert clock.getDelayedCalls() == []


def test_statsOnClock() -> None:
    """
    The counters count attempts, failures, connects and disconnects, and
    the gauges say whether a connection is up and for how long it has been.
    """
    clock = Clock()
    endpoint = FakeEndpoint()
    service = ClientService(
        endpoint, Factory.forProtocol(Protocol), lambda n: 1.0, clock=clock
    )
    assert service.stats().state == "init"
    service.startService()
    endpoint.last.fail()
    clock.advance(1.0)
    endpoint.last.succeed()
    clock.advance(10.0)
    up = service.stats()
    assert (up.attempts, up.failures, up.connects, up.disconnects) == (2, 1, 1, 0)
    assert up.connected and up.secondsConnected == 10.0 and up.failedAttempts == 0
    endpoint.last.lose()
    clock.advance(5.0)
    down = service.stats()
    assert down.state == "connecting" and not down.connected
    assert (down.connects, down.disconnects, down.failedAttempts) == (1, 1, 1)
    assert down.secondsConnected == 10.0
    endpoint.last.succeed()
    clock.advance(3.0)
    assert service.stats().secondsConnected == 13.0
    service.stopService()
    endpoint.last.lose()
    assert service.stats().secondsConnected == 13.0
    assert service.stats().state == "stopped"


@ensureDeferred
async def test_cycleOverLoopback(events: list[dict[str, Any]]) -> None:
    """
    Through a real server that goes away and comes back, the events tell
    the story: connected, disconnected (from the same peer), failed
    attempts while it is away, connected again.
    """
    server = RestartableLineServer(reactor)
    port = await server.start()
    service = ClientService(
        TCP4ClientEndpoint(reactor, "127.0.0.1", port),
        Factory.forProtocol(Protocol),
        retryPolicy=lambda n: 0.05,
    )
    service.startService()
    try:
        await service.whenConnected()
        await server.kill()
        await until(lambda: service.stats().failures >= 2)
        await server.start()
        await until(lambda: service.stats().connects == 2)
    finally:
        await service.stopService()
        await server.kill()

    for event in events:
        checkDocumented(event)
    names = [e["reconnectEvent"] for e in events]
    assert names[:4] == ["attempt", "connected", "disconnected", "attempt"]
    assert "attemptFailed" in names
    assert names.count("connected") == 2
    connected = [e for e in events if e["reconnectEvent"] == "connected"]
    assert connected[0]["peer"].port == port
    assert events[2]["peer"] == connected[0]["peer"]
    assert transitions(events)[-2:] == [
        ("stopping", "connected", "disconnecting"),
        ("stopped", "disconnecting", "stopped"),
    ]


def eventsDocBlocks() -> list[str]:
    fence = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
    return fence.findall(DOCS.read_text())


def test_observerSnippetRuns(capsys: Any, debugEvents: None) -> None:
    """
    The observer in docs/events.md, run as written, prints each event's
    name, states and text, debug events included.
    """
    [_, snippet, _] = eventsDocBlocks()
    setDebugEvents(False)
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    try:
        clock = Clock()
        service = ClientService(FakeEndpoint(), Factory(), clock=clock)
        service.startService()
        service.stopService()
    finally:
        globalLogPublisher.removeObserver(namespace["onReconnectEvent"])
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("attempt init -> connecting Connecting to <")
    assert printed[-1].startswith("stopped disconnecting -> stopped Stopped")


@pytest_twisted.ensureDeferred
async def test_quietLoggerUnderTwistd(tmp_path: Path) -> None:
    """
    The C{--logger} observer in docs/events.md, as written: twistd's log
    keeps the info events and drops the debug ones.
    """
    [_, _, quietlog] = eventsDocBlocks()
    (tmp_path / "quietlog.py").write_text(quietlog)
    process = twistd(
        tmp_path,
        "--logger=quietlog.observer",
        "saystuff",
        "--port",
        str(freePort()),
        "--initial-delay",
        "0.05",
        env={
            "PYTHONPATH": os.pathsep.join(
                [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]
            )
        },
    )
    try:
        await until(lambda: process.output.count(b"Scheduling retry") >= 2)
    finally:
        await stop(process)
    assert b"Connecting to tcp:127.0.0.1:" not in process.output
    assert b"to connect tcp:127.0.0.1:" in process.output


def test_endpointsDescribed() -> None:
    """
    Log lines name Twisted's endpoints as their descriptions, any other
    endpoint by its C{repr}.
    """
    from twisted.internet.endpoints import (
        HostnameEndpoint,
        TCP4ClientEndpoint,
        TCP6ClientEndpoint,
        UNIXClientEndpoint,
        _WrapperEndpoint,
    )

    from reconnect._describe import describeEndpoint

    fake = ResolvingMemoryReactor()
    tcp = TCP4ClientEndpoint(fake, "127.0.0.1", 7)
    assert describeEndpoint(tcp) == "tcp:127.0.0.1:7"
    assert describeEndpoint(HostnameEndpoint(fake, "example.com", 8)) == (
        "tcp:example.com:8"
    )
    assert describeEndpoint(TCP6ClientEndpoint(fake, "::1", 9)) == "tcp6:::1:9"
    assert describeEndpoint(UNIXClientEndpoint(fake, "/tmp/s")) == "unix:/tmp/s"
    wrapped = _WrapperEndpoint(tcp, lambda factory: factory)
    assert describeEndpoint(wrapped).startswith("tcp:127.0.0.1:7 (wrapped")
    other = FakeEndpoint()
    assert describeEndpoint(other) == repr(other)


def test_failoverEvents(events: list[dict[str, Any]]) -> None:
    """
    A failover endpoint's events, as documented: a failed endpoint, one
    that starts cooling, and the endpoint chosen when it changes.
    """
    from reconnect import FailoverEndpoint

    clock = Clock()
    first, second = FakeEndpoint(), FakeEndpoint()
    endpoint = FailoverEndpoint([first, second], clock=clock, failuresBeforeCooling=1)
    endpoint.connect(Factory.forProtocol(Protocol))
    first.last.fail()
    second.last.succeed()
    assert [e["reconnectEvent"] for e in events] == [
        "endpointFailed",
        "endpointCooling",
        "endpointChosen",
    ]
    for event in events:
        checkDocumented(event)
    assert events[-1]["via"] == repr(second) and not events[-1]["preferred"]


def test_handOverEvents(events: list[dict[str, Any]]) -> None:
    """
    A make-before-break move says so when it starts, when it fails, and
    (SayStuff) when the old connection is left to drain.
    """
    clock = Clock()
    endpoint = FakeEndpoint()
    stuff = SayStuffToServerService(endpoint=endpoint, reactor=clock)
    stuff.startService()
    endpoint.last.succeed()
    stuff.sendToServer(b"q")
    stuff.reconnect()
    endpoint.last.fail(ConnectionRefusedError())
    stuff.reconnect()
    endpoint.last.succeed()
    names = [e["reconnectEvent"] for e in events]
    assert names[-5:] == [
        "handingOver",
        "handOverFailed",
        "handingOver",
        "connected",
        "draining",
    ]
    for event in events:
        checkDocumented(event)
    assert events[-1]["outstanding"] == 1
    assert transitions(events)[-4:-1] == [
        ("handOverFailed", "handingOver", "connected"),
        ("handingOver", "connected", "handingOver"),
        ("connected", "handingOver", "connected"),
    ]
    stuff.stopService()


def test_heartbeatAndKeepAliveEvents(events: list[dict[str, Any]]) -> None:
    """
    A heartbeat unanswered in time, and keepalive asked for on a transport
    with no TCP socket: one documented event each.
    """
    clock = Clock()
    endpoint = FakeEndpoint()
    stuff = SayStuffToServerService(
        endpoint=endpoint, reactor=clock, heartbeat=1.0, tcpKeepAlive=True
    )
    stuff.startService()
    endpoint.last.succeed()
    clock.advance(1.0)
    clock.advance(1.0)
    names = [e["reconnectEvent"] for e in events]
    assert names.count("keepAliveSkipped") == 1
    assert names[-2:] == ["heartbeatTimeout", "dropping"]
    for event in events:
        checkDocumented(event)
    stuff.stopService()


def test_protocolErrorEvent(events: list[dict[str, Any]]) -> None:
    """
    A reply with no request to answer: one documented event names the
    cause, with the line's length and first bytes.
    """
    clock = Clock()
    endpoint = FakeEndpoint()
    stuff = SayStuffToServerService(endpoint=endpoint, reactor=clock)
    stuff.startService()
    protocol = endpoint.last.succeed()
    protocol.dataReceived(b"HELLO " + b"x" * 100 + b"\r\n")
    [event] = [e for e in events if e["reconnectEvent"] == "protocolError"]
    checkDocumented(event)
    assert (event["length"], event["preview"]) == (106, b"HELLO " + b"x" * 34)
    stuff.stopService()


DEBUG_EVENTS = {
    name for name, row in DOCUMENTED.items() if row["level"] == LogLevel.debug
}


def test_debugEventsOffByDefault() -> None:
    """
    Without being asked for, no debug event is emitted: a cycle that would
    emit C{attempt}, C{stopping} and C{restarting} emits only the others.
    """
    assert DEBUG_EVENTS >= {"attempt", "stopping", "restarting", "keepAliveSkipped"}
    assert not getDebugEvents()
    caught: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(caught.append)
    try:
        clock, endpoint = Clock(), FakeEndpoint()
        service = ClientService(
            endpoint,
            Factory.forProtocol(Protocol),
            retryPolicy=lambda n: 1.0,
            clock=clock,
        )
        service.startService()
        endpoint.last.succeed()
        service.stopService()
        service.startService()
        endpoint.last.lose()
        service.stopService()
    finally:
        globalLogPublisher.removeObserver(caught.append)
    names = [e["reconnectEvent"] for e in caught if "reconnectEvent" in e]
    assert names == ["connected", "stopped", "stopped"]


def test_debugEventsWhenAskedFor(events: list[dict[str, Any]]) -> None:
    """
    Turned on, debug events are emitted with their documented fields; turned
    off again, they stop.
    """
    clock, endpoint = Clock(), FakeEndpoint()
    service = ClientService(
        endpoint, Factory.forProtocol(Protocol), retryPolicy=lambda n: 1.0, clock=clock
    )
    service.startService()
    endpoint.last.succeed()
    service.stopService()
    service.startService()
    names = [e["reconnectEvent"] for e in events]
    assert names == ["attempt", "connected", "stopping", "restarting"]
    for event in events:
        checkDocumented(event)
    setDebugEvents(False)
    endpoint.last.lose()
    assert [e["reconnectEvent"] for e in events[4:]] == ["stopped"]
    service.stopService()


def test_setDebugEventsTakesABool() -> None:
    with pytest.raises(TypeError):
        setDebugEvents(1)  # type: ignore[arg-type]
    assert not getDebugEvents()


@pytest.mark.parametrize(
    "value, on", [("1", True), ("yes", True), ("0", False), ("", False)]
)
def test_debugEventsFromTheEnvironment(value: str, on: bool) -> None:
    """
    C{RECONNECT_DEBUG_EVENTS} set (and not C{0}) when the process starts
    turns debug events on.
    """
    done = subprocess.run(
        [sys.executable, "-c", "import reconnect; print(reconnect.getDebugEvents())"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "RECONNECT_DEBUG_EVENTS": value},
    )
    assert done.stdout.strip() == str(on)


def test_debugSnippetRuns() -> None:
    """
    The snippet of docs/events.md that turns debug events on runs as
    written.
    """
    [snippet, _, _] = eventsDocBlocks()
    try:
        exec(snippet, {})
        assert getDebugEvents()
    finally:
        setDebugEvents(False)
