"""
Reconnect cycles through the state machine: disconnect, wait, connect,
connected, on a fake clock with an endpoint that connects at once.

Anchor: Twisted's own C{ClientService} (automat's TypeMachine), in the same
process, in alternating batches.  Each cycle is timed with logging set up
one of three ways, the same for both: a text file observer on every event
(as under twistd, writing to /dev/null), the same behind an info-level
filter, and before logging begins (events kept in the beginner's buffer).
Twisted's service emits one event per cycle; ours two (three with debug
events on: see reconnect.setDebugEvents).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from twisted.application.internet import ClientService as TwistedClientService
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LimitedHistoryLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
    textFileLogObserver,
)

from reconnect import ClientService
from reconnect._machine import _INPUTS, _ClientMachine
from reconnect.testing import FakeEndpoint

from ._timing import Comparison, alternate


def cycler(serviceClass: Any, cycles: int) -> Any:
    """
    A function that runs C{cycles} reconnect cycles on a fresh service.
    """

    def run() -> int:
        clock = Clock()
        endpoint = FakeEndpoint(immediately=True)
        service = serviceClass(
            endpoint,
            Factory.forProtocol(Protocol),
            retryPolicy=lambda attempt: 0.0,
            clock=clock,
        )
        service.startService()
        for _ in range(cycles):
            endpoint.last.lose()
            clock.advance(0)
            del endpoint.attempts[:-1]
        service.stopService()
        endpoint.last.lose()
        return cycles

    return run


def inputsPerCycle() -> int:
    """
    Count the machine inputs one reconnect cycle of ours takes.
    """
    clock = Clock()
    endpoint = FakeEndpoint(immediately=True)
    service = ClientService(
        endpoint, Factory.forProtocol(Protocol), retryPolicy=lambda n: 0.0, clock=clock
    )
    service.startService()
    counted: list[str] = []
    originals = {name: _ClientMachine.__dict__[name] for name in _INPUTS}

    def counting(name: str) -> Any:
        def count(machine: Any, *args: Any) -> None:
            counted.append(name)
            originals[name](machine, *args)

        return count

    for name in _INPUTS:
        setattr(_ClientMachine, name, counting(name))
    try:
        endpoint.last.lose()
        clock.advance(0)
    finally:
        for name, original in originals.items():
            setattr(_ClientMachine, name, original)
    return len(counted)


def textFile(out: TextIO) -> ILogObserver:
    return textFileLogObserver(out)


def infoFilter(out: TextIO) -> ILogObserver:
    return FilteringLogObserver(
        textFileLogObserver(out), [LogLevelFilterPredicate(LogLevel.info)]
    )


def beforeBeginning(out: TextIO) -> ILogObserver:
    # What globalLogBeginner keeps events in until logging begins.
    return LimitedHistoryLogObserver(65536)


SETUPS: dict[str, Callable[[TextIO], ILogObserver]] = {
    "text file observer (as under twistd)": textFile,
    "text file observer, info-level filter": infoFilter,
    "before logging begins (buffered)": beforeBeginning,
}


@contextmanager
def logging(setup: Callable[[TextIO], ILogObserver]) -> Iterator[None]:
    """
    Send the global log's events to C{setup}'s observer meanwhile.
    """
    with open(os.devnull, "w") as out:
        observer = setup(out)
        globalLogPublisher.addObserver(observer)
        try:
            yield
        finally:
            globalLogPublisher.removeObserver(observer)


def logged(run: Callable[[], int], setup: Callable[[TextIO], ILogObserver]) -> Any:
    def inLogging() -> int:
        with logging(setup):
            return run()

    return inLogging


def run(setup: str, batches: int = 15, cycles: int = 1000) -> Comparison:
    comparison = Comparison(
        f"reconnect cycles, {setup}",
        "twisted ClientService",
        "reconnect ClientService",
        "cycles/s",
    )
    observe = SETUPS[setup]
    return alternate(
        comparison,
        logged(cycler(TwistedClientService, cycles), observe),
        logged(cycler(ClientService, cycles), observe),
        batches,
    )
