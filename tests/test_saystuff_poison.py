"""
A line that makes the server drop the connection (a "poison" line) hurts
no other request: after a loss, suspects are written with care, only what
was written is charged, the culprit fails after the resend limit, and the
service reconnects at once while the server answers, but meets the retry
policy when it answers nothing (on a clock, with a scripted server).
"""

from __future__ import annotations

from typing import Any

from helpers import outcome, sayStuffOnClock
from test_events import checkDocumented, debugEvents, events
from twisted.internet.task import Clock

from reconnect.saystuff import MaybeDelivered, SayStuffToServerService
from reconnect.saystuff._service import EARLY_RECONNECTS
from reconnect.testing import FakeAttempt, FakeEndpoint

POISON = b"POISON"
__all__ = ["debugEvents", "events"]


def service(**kwargs: Any) -> tuple[SayStuffToServerService, Clock, FakeEndpoint]:
    return sayStuffOnClock(start=True, **kwargs)


def written(attempt: FakeAttempt) -> list[bytes]:
    assert attempt.transport is not None
    return attempt.transport.value().split(b"\r\n")[:-1]


def serve(endpoint: FakeEndpoint, answered: dict[int, int]) -> None:
    """
    The poison server: connect every pending attempt; on each connection,
    echo the lines written since last time, up to C{POISON}, which drops
    the connection.
    """
    for attempt in endpoint.attempts:
        if attempt.protocol is None and not attempt.deferred.called:
            attempt.succeed()
        if attempt.protocol is None or attempt.lost:
            continue
        lines = written(attempt)
        new = lines[answered.get(id(attempt), 0) :]
        answered[id(attempt)] = len(lines)
        replies = []
        for line in new:
            if line == POISON:
                break
            replies.append(line)
        if replies:
            attempt.protocol.dataReceived(b"".join(r + b"\r\n" for r in replies))
        if len(replies) < len(new):
            attempt.lose()


def settle(endpoint: FakeEndpoint, answered: dict[int, int]) -> None:
    "Serve until nothing more happens without the clock moving."
    seen = -1
    while seen != (len(endpoint.attempts), sum(answered.values())):
        seen = (len(endpoint.attempts), sum(answered.values()))
        serve(endpoint, answered)


def test_poisonWrittenAloneAfterALoss() -> None:
    """
    A connection dies with a poison line and two innocent requests written
    beside it, after one earlier reply.  The next connection, made at
    once, writes the oldest suspect alone: the poison line, which dies
    alone; the innocent suspect goes next, alone, and is answered; the
    poison line is written alone after it until it fails with
    L{MaybeDelivered} at the resend limit.  The innocent was written twice
    only: on the first connection and when it was answered.  No time
    passed: every connection followed the last at once.
    """
    stuff, clock, endpoint = service()
    endpoint.last.succeed()
    warm = stuff.sendToServer(b"warm")
    endpoint.last.protocol.dataReceived(b"warm\r\n")
    assert outcome(warm) == b"warm"
    poison = stuff.sendToServer(POISON)
    innocent = stuff.sendToServer(b"innocent")
    first = endpoint.last
    assert written(first) == [b"warm", POISON, b"innocent"]
    first.lose()
    second = endpoint.last
    assert second is not first
    second.succeed()
    assert written(second) == [POISON]
    second.lose()
    third = endpoint.last
    third.succeed()
    assert written(third) == [b"innocent"]
    third.protocol.dataReceived(b"innocent\r\n")
    assert outcome(innocent) == b"innocent"
    assert written(third) == [b"innocent", POISON]
    third.lose()
    fourth = endpoint.last
    fourth.succeed()
    assert written(fourth) == [POISON]
    fourth.lose()
    failure = outcome(poison)
    assert failure.check(MaybeDelivered)
    assert "lost each of the 4 times it was written" in str(failure.value)
    assert clock.seconds() == 0
    lines = [line for attempt in endpoint.attempts for line in written(attempt)]
    assert lines.count(b"innocent") == 2
    assert lines.count(POISON) == 4
    later = stuff.sendToServer(b"later")
    endpoint.last.succeed()
    endpoint.last.protocol.dataReceived(b"later\r\n")
    assert outcome(later) == b"later"
    stuff.stopService()


def test_requestsHeldBackAreNotCharged() -> None:
    """
    Requests that are held back while a suspect is written alone are not
    charged when it dies: with C{resendLimit=0}, a request written once on
    a connection that died fails, but one sent after the loss is answered,
    however many times the suspect's connection dies.
    """
    stuff, clock, endpoint = service(resendLimit=1)
    endpoint.last.succeed()
    endpoint.last.protocol.dataReceived(b"")
    warm = stuff.sendToServer(b"warm")
    endpoint.last.protocol.dataReceived(b"warm\r\n")
    assert outcome(warm) == b"warm"
    poison = stuff.sendToServer(POISON)
    endpoint.last.lose()
    assert endpoint.last.protocol is None
    endpoint.last.succeed()
    held = stuff.sendToServer(b"held")
    assert written(endpoint.last) == [POISON]
    endpoint.last.lose()
    assert outcome(poison).check(MaybeDelivered)
    endpoint.last.succeed()
    assert written(endpoint.last) == [b"held"]
    endpoint.last.protocol.dataReceived(b"held\r\n")
    assert outcome(held) == b"held"
    stuff.stopService()


def test_linesAfterThePoisonAreAnswered() -> None:
    """
    A client that writes a poison line and more lines after it in one go,
    again and again: every other line is answered, and each poison line
    fails after the resend limit; no other request ever fails.
    """
    stuff, clock, endpoint = service()
    answered: dict[int, int] = {}
    endpoint.last.succeed()
    others = [stuff.sendToServer(b"warm")]
    poisons = []
    for round in range(5):
        poisons.append(stuff.sendToServer(POISON))
        others += [stuff.sendToServer(b"after %d %d" % (round, n)) for n in range(3)]
        settle(endpoint, answered)
        clock.advance(60)
        settle(endpoint, answered)
    assert [outcome(d) for d in others[1:]] == [
        b"after %d %d" % (round, n) for round in range(5) for n in range(3)
    ]
    assert all(outcome(p).check(MaybeDelivered) for p in poisons)
    stuff.stopService()


def test_anotherClientIsAnsweredWhilePoisonRepeats() -> None:
    """
    One caller sends a poison line again as soon as the last one failed;
    another sends a line every 50 ms, once the last was answered.  On the
    default backoff policy, over 10 s, the other caller's every line is
    answered, none waits as much as a second, and the poison lines fail.
    """
    from reconnect import backoffPolicy

    stuff, clock, endpoint = service(retryPolicy=backoffPolicy(jitter=lambda: 0.5))
    answered: dict[int, int] = {}
    waits: list[float] = []
    failures: list[Any] = []

    def poison() -> None:
        if stuff.running:
            stuff.sendToServer(POISON).addErrback(
                lambda f: (failures.append(f), clock.callLater(0, poison))
            )

    def other(n: int = 0) -> None:
        if not stuff.running:
            return
        sent = clock.seconds()

        def answered(reply: bytes) -> None:
            assert reply == b"other %d" % n
            waits.append(clock.seconds() - sent)
            clock.callLater(0.05, other, n + 1)

        stuff.sendToServer(b"other %d" % n).addCallback(answered)

    endpoint.last.succeed()
    other()
    poison()
    while clock.seconds() < 10:
        settle(endpoint, answered)
        clock.advance(0.001)
    stuff.stopService()
    settle(endpoint, answered)
    clock.advance(10)
    assert len(waits) > 150
    assert max(waits) < 1.0
    assert len(failures) > 10
    assert all(f.check(MaybeDelivered) for f in failures[:-1])


def test_lostAfterRepliesReconnectsAtOnce(events: list[dict[str, Any]]) -> None:
    """
    A connection that answered and then dies with requests awaited is
    followed by a new one at once, with no failure counted: a documented
    C{lostInFlight} event, then a C{dropping} one, say so.
    """
    stuff, clock, endpoint = service()
    endpoint.last.succeed()
    first = stuff.sendToServer(b"one")
    endpoint.last.protocol.dataReceived(b"one\r\n")
    assert outcome(first) == b"one"
    second = stuff.sendToServer(b"two")
    endpoint.last.lose()
    assert stuff.state == "connecting"
    assert stuff.clientService.stats().failures == 0
    names = [e["reconnectEvent"] for e in events]
    assert names[-3:] == ["lostInFlight", "dropping", "attempt"]
    [lost] = [e for e in events if e["reconnectEvent"] == "lostInFlight"]
    checkDocumented(lost)
    assert "at once" in lost["then"] and lost["outstanding"] == 1
    endpoint.last.succeed()
    endpoint.last.protocol.dataReceived(b"two\r\n")
    assert outcome(second) == b"two"
    stuff.stopService()


def test_serverThatAnswersNothingMeetsThePolicy() -> None:
    """
    A server that accepts every connection and drops it as soon as a line
    comes, answering nothing: each connection is a failed attempt, paced
    by the retry policy as the failure after those before it; there is no
    reconnect at once, whatever the requests waiting.
    """
    stuff, clock, endpoint = service(retryPolicy=lambda n: float(n))
    replies = [stuff.sendToServer(b"r%d" % n) for n in range(20)]
    made = []
    while clock.seconds() < 30:
        attempt = endpoint.last
        if attempt.protocol is None and not attempt.deferred.called:
            attempt.succeed()
            made.append(clock.seconds())
            stuff.sendToServer(b"more")
            attempt.lose()
        clock.advance(0.5)
    gaps = [later - earlier for earlier, later in zip(made[:-1], made[1:], strict=True)]
    assert gaps == sorted(gaps) and gaps[0] >= 1.0
    assert len(made) <= 8
    stuff.stopService()
    assert all(outcome(reply) is not None for reply in replies)


def test_earlyReconnectIsLogged(events: list[dict[str, Any]]) -> None:
    """
    A connection that answered nothing dies; the policy's delay is cut
    short by a request that waits: one documented C{lostInFlight} event
    says why.
    """
    stuff, clock, endpoint = service()
    endpoint.last.succeed()
    warm = stuff.sendToServer(b"warm")
    endpoint.last.protocol.dataReceived(b"warm\r\n")
    assert outcome(warm) == b"warm"
    poison = stuff.sendToServer(POISON)
    endpoint.last.lose()
    endpoint.last.succeed()
    assert written(endpoint.last) == [POISON]
    endpoint.last.lose()
    assert stuff.state == "waiting"
    waiting = stuff.sendToServer(b"waiting")
    assert stuff.state == "connecting"
    early = [e for e in events if e["reconnectEvent"] == "lostInFlight"][-1]
    checkDocumented(early)
    assert "connecting now" in early["then"]
    endpoint.last.succeed()
    assert written(endpoint.last) == [b"waiting"]
    endpoint.last.protocol.dataReceived(b"waiting\r\n")
    assert outcome(waiting) == b"waiting"
    stuff.stopService()
    clock.advance(5)
    assert outcome(poison) is not None


def test_earlyReconnectsInARowAreBounded() -> None:
    """
    A server that answered once, then drops every connection as soon as a
    line comes: requests that wait make the service connect early, but no
    more than L{EARLY_RECONNECTS} times in a row with no reply between;
    then the retry policy paces it.
    """
    stuff, clock, endpoint = service(retryPolicy=lambda n: 10.0)
    endpoint.last.succeed()
    first = stuff.sendToServer(b"first")
    endpoint.last.protocol.dataReceived(b"first\r\n")
    assert outcome(first) == b"first"
    pending = []
    for n in range(3 * EARLY_RECONNECTS):
        pending.append(stuff.sendToServer(b"r%d" % n))
        attempt = endpoint.last
        if attempt.protocol is None and not attempt.deferred.called:
            attempt.succeed()
        if attempt.protocol is not None and not attempt.lost and written(attempt):
            attempt.lose()
    # The first loss followed replies (at once), then at most
    # EARLY_RECONNECTS early ones: all with no time passing.
    assert clock.seconds() == 0
    assert len(endpoint.attempts) <= 2 + EARLY_RECONNECTS
    assert stuff.state == "waiting"
    stuff.stopService()
    assert all(outcome(reply) is not None for reply in pending)
