"""
Reconnect cycles through the state machine: disconnect, wait, connect,
connected, on a fake clock with an endpoint that connects at once.

Anchor: Twisted's own C{ClientService} (automat's TypeMachine), in the same
process, in alternating batches.
"""

from __future__ import annotations

from typing import Any

from twisted.application.internet import ClientService as TwistedClientService
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock

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


def run(batches: int = 15, cycles: int = 1000) -> Comparison:
    comparison = Comparison(
        "reconnect cycles (fake clock, instant endpoint)",
        "twisted ClientService",
        "reconnect ClientService",
        "cycles/s",
    )
    return alternate(
        comparison,
        cycler(TwistedClientService, cycles),
        cycler(ClientService, cycles),
        batches,
    )
