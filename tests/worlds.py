"""
A service in a small world of its own, driven one step at a time: a fake
endpoint and clock, user code whose behaviour the steps set, and a record of
what the service said and of every Deferred it handed out.  The differential
and exhaustive tests drive worlds through the same steps.

A step is a tuple: its name, then its arguments.  A step that has nothing to
act on (no attempt to fail, say) does nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional

from moods import Boom, Moods, MoodyEndpoint
from OpenSSL import SSL
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure

import reconnect._service
from reconnect._driver import compileInputs, discard
from reconnect._machine import _INPUTS, _ClientMachine, _compiled
from reconnect.testing import FakeAttempt

Step = tuple[Any, ...]


# What a connection whose certificate the peer refused ends with.
CERTIFICATE_REFUSED = SSL.Error(
    [("SSL routines", "", "tlsv13 alert certificate required")]
)


def _engines() -> dict[str, type]:
    """
    The service's machine on automat's own inputs and on compiled ones, as
    two subclasses, whichever the machine class itself was given.
    """
    table = compileInputs(_ClientMachine._machine, discard)
    assert table is not None
    if _compiled is not None:
        automatInputs = dict(_compiled.replaced)
    else:
        automatInputs = {name: vars(_ClientMachine)[name] for name in _INPUTS}
        automatInputs["state"] = vars(_ClientMachine)["state"]
    onAutomat = type("OnAutomat", (_ClientMachine,), {"__slots__": ()})
    for name, original in automatInputs.items():
        setattr(onAutomat, name, original)
    onCompiled = type("OnCompiled", (_ClientMachine,), {"__slots__": ()})
    table.install(onCompiled, _INPUTS)
    return {"automat": onAutomat, "compiled": onCompiled}


ENGINES = _engines()


@contextmanager
def machineClass(engine: str) -> Iterator[None]:
    """
    Services made meanwhile run on C{engine}.
    """
    original = reconnect._service._ClientMachine
    reconnect._service._ClientMachine = ENGINES[engine]  # type: ignore[misc]
    try:
        yield
    finally:
        reconnect._service._ClientMachine = original  # type: ignore[misc]


class Mood(Moods):
    """
    The user code of a world: each callable behaves as the steps last said;
    its callbacks may also stop or reconnect the world's service.
    """

    def __init__(self, world: World) -> None:
        super().__init__(prepare="ok")
        self.world = world

    def delay(self, attempt: int) -> Optional[float]:
        return 1.0 if attempt < 3 else None

    def callback(self, *args: object) -> None:
        super().callback(*args)
        if self.callbacks == "stop":
            self.world.record(self.world.service.stopService())
        if self.callbacks == "reconnect":
            self.world.service.reconnect()


MOODS = {
    "policy": ["ok", "raise", "none", "nan", "string"],
    "fatal": ["no", "yes", "raise"],
    "prepare": ["ok", "fail", "hang", "raise", "nonsense"],
    "callbacks": ["ok", "raise", "stop", "reconnect"],
    "connect": ["ok", "raise", "nonsense"],
    "retire": ["close", "keep", "raise"],
}


class World:
    """
    One service, its endpoint, clock and user code, and what it did.

    @ivar events: the service's events so far, each as the fields that
        must not depend on the engine.
    @ivar handedOut: every Deferred the service handed out, in order.
    """

    def __init__(
        self,
        engine: str,
        handsOver: bool = False,
        attemptTimeout: Optional[float] = 5.0,
        resetAfter: Optional[float] = None,
        immediateFailover: bool = False,
    ) -> None:
        self.mood = Mood(self)
        self.clock = Clock()
        self.endpoint = MoodyEndpoint(self.mood)
        self.events: list[tuple[object, ...]] = []
        self.handedOut: list[Deferred[Any]] = []
        self.kinds: list[str] = []
        with machineClass(engine):
            self.service = self.mood.serviceOver(
                self.endpoint,
                self.clock,
                handsOver,
                attemptTimeout=attemptTimeout,
                resetAfter=resetAfter,
                immediateFailover=immediateFailover,
                onGaveUp=self.mood.callback,
            )
        assert type(self.service._machine) is ENGINES[engine]

    @contextmanager
    def listening(self) -> Iterator[None]:
        """
        Record the service's events meanwhile.
        """

        def observe(event: dict[str, Any]) -> None:
            if event.get("log_source") is self.service:
                failure = event.get("log_failure") or event.get("failure")
                self.events.append(
                    (
                        event.get("reconnectEvent"),
                        event.get("log_level"),
                        event.get("fromState"),
                        event.get("toState"),
                        event.get("attempt"),
                        event.get("delay"),
                        re.sub(r"0x[0-9a-f]+", "0x", str(event.get("reason"))),
                        None if failure is None else failure.type,
                        tuple(sorted(event)),
                    )
                )

        globalLogPublisher.addObserver(observe)
        try:
            yield
        finally:
            globalLogPublisher.removeObserver(observe)

    def record(self, handed: Deferred[Any], kind: str = "stop") -> None:
        """
        Keep C{handed}, a Deferred of C{stopService} or (C{kind}
        C{"whenConnected"}) of C{whenConnected}.
        """
        handed.addErrback(lambda f: None)
        self.handedOut.append(handed)
        self.kinds.append(kind)

    # -- what the steps act on ----------------------------------------------------

    def pendingAttempt(self) -> Optional[FakeAttempt]:
        for attempt in reversed(self.endpoint.attempts):
            if attempt.protocol is None and not attempt.deferred.called:
                return attempt
        return None

    def liveConnections(self) -> list[FakeAttempt]:
        return [
            attempt
            for attempt in self.endpoint.attempts
            if attempt.protocol is not None and not attempt.lost
        ]

    # -- the steps ----------------------------------------------------------------

    def do(self, step: Step) -> None:
        """
        Take one step.
        """
        name, *args = step
        service = self.service
        if name == "start":
            service.startService()
        elif name == "stop":
            self.record(service.stopService())
        elif name == "whenConnected":
            self.record(service.whenConnected(*args), "whenConnected")
        elif name == "cancelWaiter":
            for handed in self.handedOut:
                if not handed.called:
                    handed.cancel()
                    break
        elif name == "reconnect":
            service.reconnect()
        elif name == "drop":
            service.dropConnection(args[0])
        elif name == "succeed":
            attempt = self.pendingAttempt()
            if attempt is not None:
                self.mood.prepare = args[0]
                attempt.succeed()
        elif name == "fail":
            attempt = self.pendingAttempt()
            if attempt is not None:
                attempt.fail()
        elif name == "lose":
            live = self.liveConnections()
            if live and args[0] == "refused":
                # As a TLS 1.3 server that refuses the client's certificate
                # once the handshake is done ends the connection.
                live[-1].lose(CERTIFICATE_REFUSED)
            elif live:
                live[-1 if args[0] == "newest" else 0].lose()
        elif name == "prepared":
            if self.mood.prepared:
                prepared = self.mood.prepared.pop(0)
                if not prepared.called:
                    if args[0] == "ok":
                        prepared.callback(None)
                    else:
                        prepared.errback(Boom("prepared late, and failed"))
        elif name == "advance":
            self.clock.advance(args[0])
        elif name == "mood":
            setattr(self.mood, args[0], args[1])
        else:
            raise ValueError(f"no such step: {step!r}")

    # -- what is seen -------------------------------------------------------------

    def outcomes(self, kind: str = "") -> list[object]:
        """
        How each Deferred handed out (of C{kind}, if given) stands: pending,
        fired, or failed (with what).
        """
        seen: list[object] = []
        for handed, handedKind in zip(self.handedOut, self.kinds, strict=True):
            if kind and handedKind != kind:
                continue
            if not handed.called:
                seen.append("pending")
            elif isinstance(handed.result, Failure):
                seen.append(handed.result.type)
            else:
                seen.append("fired")
        return seen

    def seen(self) -> dict[str, object]:
        """
        Everything about the world that must not depend on the engine.
        """
        now = self.clock.seconds()
        return {
            "state": self.service.state,
            "stats": self.service.stats(),
            "lastFailure": getattr(self.service.lastFailure, "type", None),
            "events": list(self.events),
            "outcomes": self.outcomes(),
            "calls": sorted(
                (call.getTime() - now, getattr(call.func, "__name__", ""))
                for call in self.clock.getDelayedCalls()
            ),
            "attempts": [
                (a.protocol is not None, a.lost, a.cancelled, a.deferred.called)
                for a in self.endpoint.attempts
            ],
            "prepared": [p.called for p in self.mood.prepared],
        }

    def shutDown(self) -> None:
        """
        Stop the service and end everything left open, as a process would.
        """
        self.record(self.service.stopService())
        for prepared in self.mood.prepared:
            if not prepared.called:
                prepared.errback(Boom("shut down"))
        for attempt in self.liveConnections():
            attempt.lose()
        self.clock.advance(100)
