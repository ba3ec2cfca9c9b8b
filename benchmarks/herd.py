"""
The thundering herd, and recovery after an outage, in virtual time.

Thousands of real L{ClientService}s, each with its own retry policy
instance, run on one L{Clock} against a simulated server: it accepts at most
C{capacity} connections in any 100 ms window and refuses the rest, as a
server with a full accept queue does.  At time 0 it crashes, dropping every
connection; it comes back after C{outage} seconds.  Every connection attempt
is recorded with its time.

The figures are the peak number of attempts in any 100 ms window after the
server's return, and how long after its return every client is connected
again.  Virtual time makes them exact and the same on any machine, for a
given seed; what varies between policies is only the policy.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from twisted.internet.base import DelayedCall
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionLost, ConnectionRefusedError
from twisted.internet.interfaces import IProtocol, IProtocolFactory
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from reconnect import (
    ClientService,
    RetryPolicy,
    backoffPolicy,
    decorrelatedJitterPolicy,
    fullJitterPolicy,
)

WINDOW = 0.1


class HeapClock:
    """
    Virtual time for thousands of timers: L{twisted.internet.task.Clock}
    sorts all its calls at every C{callLater}, which, with a few thousand
    clients, costs more than the clients.  Cancelled calls are skipped when
    their time comes.
    """

    def __init__(self) -> None:
        self._now = 0.0
        self._heap: list[tuple[float, int, DelayedCall]] = []
        self._order = count()

    def seconds(self) -> float:
        return self._now

    def callLater(self, delay: float, f: Any, *args: Any, **kw: Any) -> DelayedCall:
        call = DelayedCall(
            self._now + delay,
            f,
            args,
            kw,
            lambda call: None,
            self._cannotReset,
            seconds=self.seconds,
        )
        heapq.heappush(self._heap, (call.time, next(self._order), call))
        return call

    @staticmethod
    def _cannotReset(call: DelayedCall) -> None:
        raise NotImplementedError("the herd's clients never reset a call")

    def getDelayedCalls(self) -> list[DelayedCall]:
        return [call for _, _, call in self._heap if call.active()]

    def runNext(self) -> bool:
        """
        Run the next call that is still due; L{False} if there is none.
        """
        while self._heap:
            when, _, call = heapq.heappop(self._heap)
            if call.active():
                self._now = when
                call.called = 1
                call.func(*call.args, **call.kw)
                return True
        return False


@dataclass
class SimulatedServer:
    """
    A server that is up or down, accepts at most C{capacity} connections
    per window, and remembers when each attempt came.
    """

    clock: HeapClock
    capacity: int
    up: bool = True
    attempts: list[float] = field(default_factory=list)
    connections: list[IProtocol] = field(default_factory=list)
    _acceptedIn: dict[int, int] = field(default_factory=dict)

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        now = self.clock.seconds()
        self.attempts.append(now)
        window = int(now / WINDOW)
        if not self.up or self._acceptedIn.get(window, 0) >= self.capacity:
            return fail(ConnectionRefusedError())
        self._acceptedIn[window] = self._acceptedIn.get(window, 0) + 1
        protocol = factory.buildProtocol(None)
        assert protocol is not None
        protocol.makeConnection(StringTransport())
        self.connections.append(protocol)
        return succeed(protocol)

    def crash(self) -> None:
        self.up = False
        dropped, self.connections = self.connections, []
        for protocol in dropped:
            protocol.connectionLost(Failure(ConnectionLost()))


class Endpoint:
    def __init__(self, server: SimulatedServer) -> None:
        self._server = server

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        return self._server.connect(factory)


POLICIES: dict[str, Callable[[random.Random], RetryPolicy]] = {
    "backoffPolicy() (Twisted's default)": lambda r: backoffPolicy(jitter=r.random),
    "fullJitterPolicy()": lambda r: fullJitterPolicy(random=r.random),
    "decorrelatedJitterPolicy()": lambda r: decorrelatedJitterPolicy(random=r.random),
}


@dataclass
class Outcome:
    policy: str
    clients: int
    outage: float
    attempts: list[float]
    recoveredAfter: float
    firstBack: list[float]

    def peakPerWindow(self) -> int:
        counts: dict[int, int] = {}
        for t in self.attempts:
            if t >= self.outage:
                key = int(t / WINDOW)
                counts[key] = counts.get(key, 0) + 1
        return max(counts.values(), default=0)


def simulate(
    policyName: str,
    clients: int = 2000,
    outage: float = 10.0,
    capacity: int = 100,
    seed: int = 1,
    horizon: float = 600.0,
) -> Outcome:
    """
    Crash the server under C{clients} connected clients and bring it back
    after C{outage} seconds; run until all are connected again.
    """
    rng = random.Random(seed)
    clock = HeapClock()
    server = SimulatedServer(clock, capacity=clients)
    firstBack: list[float] = []

    def connected(protocol: IProtocol) -> None:
        if clock.seconds() >= outage:
            firstBack.append(clock.seconds() - outage)

    services = []
    for _ in range(clients):
        service = ClientService(
            Endpoint(server),
            Factory.forProtocol(Protocol),
            retryPolicy=POLICIES[policyName](rng),
            clock=clock,
            onConnected=connected,
        )
        service.startService()
        services.append(service)
    server.attempts.clear()
    server.capacity = capacity
    server.crash()
    clock.callLater(outage, setattr, server, "up", True)
    while len(firstBack) < clients and clock.seconds() < horizon:
        if not clock.runNext():
            break
    for service in services:
        service.stopService()
    attempts = [t for t in server.attempts]
    return Outcome(
        policyName,
        clients,
        outage,
        attempts,
        clock.seconds() - outage,
        sorted(firstBack),
    )


def _percentile(values: list[float], fraction: float) -> float:
    return values[min(len(values) - 1, int(fraction * len(values)))]


def run(
    clients: int = 2000, outage: float = 10.0, capacity: int = 100
) -> list[dict[str, Any]]:
    rows = []
    outcomes = []
    for name in POLICIES:
        outcome = simulate(name, clients=clients, outage=outage, capacity=capacity)
        outcomes.append(outcome)
        rows.append(
            {
                "benchmark": f"herd: {clients} clients, {outage:g} s outage, "
                f"server accepts {capacity}/100 ms",
                "policy": name,
                "peak attempts per 100 ms after return": outcome.peakPerWindow(),
                "attempts after return": sum(
                    1 for t in outcome.attempts if t >= outage
                ),
                "all back after (s)": round(outcome.recoveredAfter, 2),
                "median client back after (s)": round(
                    _percentile(outcome.firstBack, 0.5), 2
                ),
            }
        )
    return rows, outcomes


def recovery(
    outages: tuple[float, ...] = (5.0, 30.0, 120.0), clients: int = 500
) -> list[dict[str, Any]]:
    """
    For each policy and outage length: how long after the server's return a
    client is connected again (and could have its first reply), median and
    99th percentile over independent clients, with no capacity limit.
    """
    rows = []
    for outage in outages:
        for name in POLICIES:
            outcome = simulate(
                name, clients=clients, outage=outage, capacity=clients, seed=2
            )
            rows.append(
                {
                    "benchmark": f"recovery after a {outage:g} s outage",
                    "policy": name,
                    "median (s)": round(_percentile(outcome.firstBack, 0.5), 2),
                    "p99 (s)": round(_percentile(outcome.firstBack, 0.99), 2),
                }
            )
    return rows


def plot(outcomes: list[Outcome], path: str) -> None:
    """
    Attempts per 100 ms over time, one line per policy.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 4.5), dpi=100)
    for outcome in outcomes:
        end = max(outcome.attempts, default=0.0)
        bins = int(end / WINDOW) + 1
        counts = [0] * bins
        for t in outcome.attempts:
            counts[int(t / WINDOW)] += 1
        axes.plot([i * WINDOW for i in range(bins)], counts, label=outcome.policy, lw=1)
    first = outcomes[0]
    axes.axvline(first.outage, color="grey", ls="--", lw=0.8)
    axes.set_xlabel("seconds since the server crashed (it returns at the dashed line)")
    axes.set_ylabel("connection attempts per 100 ms")
    axes.set_title(
        f"{first.clients} clients reconnecting; the server accepts "
        f"100 connections per 100 ms"
    )
    axes.set_xlim(0, max(o.outage + o.recoveredAfter for o in outcomes) + 2)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
