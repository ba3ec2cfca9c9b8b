"""
Tests for L{reconnect._settings}: services configured alike share one
settings object, and only those.
"""

from __future__ import annotations

import gc

from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock

from reconnect import ClientService
from reconnect._machine import _IDLE, _Connected, _Stopping
from reconnect._settings import Settings, _alike, sharedSettings
from reconnect.testing import FakeEndpoint


def onConnected(protocol: object) -> None:
    pass


def test_servicesMadeAlikeShareSettings() -> None:
    """
    Services given the same clock and callbacks share their settings, and
    the settings say what each was given.
    """
    clock = Clock()
    factory = Factory.forProtocol(Protocol)
    services = [
        ClientService(
            FakeEndpoint(),
            factory,
            clock=clock,
            onConnected=onConnected,
            attemptTimeout=5.0,
        )
        for _ in range(3)
    ]
    settings = {id(service._machine._settings) for service in services}
    assert len(settings) == 1
    shared = services[0]._machine._settings
    assert shared.clock is clock
    assert shared.onConnected is onConnected
    assert shared.attemptTimeout == 5.0
    assert shared.isFatal is None


def test_otherObjectsOtherSettings() -> None:
    """
    Another clock, another callable, or an equal value that is another
    object, makes other settings: sharing is by identity, never by
    equality, so no service runs another's callable.
    """
    clock = Clock()
    base = sharedSettings(Settings(clock, None, onConnected=onConnected))  # type: ignore[arg-type]
    assert sharedSettings(Settings(clock, None, onConnected=onConnected)) is base  # type: ignore[arg-type]
    assert sharedSettings(Settings(Clock(), None, onConnected=onConnected)) is not base  # type: ignore[arg-type]
    assert sharedSettings(Settings(clock, None, onConnected=lambda p: None)) is not base  # type: ignore[arg-type]
    timeout = float("1.5")
    other = sharedSettings(Settings(clock, None, attemptTimeout=timeout))  # type: ignore[arg-type]
    assert (
        sharedSettings(Settings(clock, None, attemptTimeout=float("1.5"))) is not other
    )  # type: ignore[arg-type]


def test_settingsGoWithTheirServices() -> None:
    """
    Settings are kept only while a service uses them: a program that makes
    services with ever new callables does not grow the table.
    """
    clock = Clock()
    gc.collect()
    before = len(_alike)
    for _ in range(20):
        ClientService(
            FakeEndpoint(),
            Factory.forProtocol(Protocol),
            clock=clock,
            onConnected=lambda protocol: None,
        )
    gc.collect()
    assert len(_alike) == before


def test_connectedServiceKeepsLittle() -> None:
    """
    What a connected service keeps is what memory per service is made of:
    no attempt state once the attempt has ended, only its connection as
    the state's data, and settings shared with its siblings.  A stop keeps
    its waiters only until the connection has ended.
    """
    clock = Clock()
    factory = Factory.forProtocol(Protocol)
    services = []
    for _ in range(2):
        endpoint = FakeEndpoint()
        service = ClientService(endpoint, factory, clock=clock)
        service.startService()
        proxy = endpoint.last.succeed()
        services.append((service, endpoint, proxy))
    (first, endpoint, proxy), (second, _, _) = services
    machine = first._machine
    assert machine._settings is second._machine._settings
    assert type(machine._data) is _Connected and machine._data.proxy is proxy
    assert proxy._factory._progress is None
    stopped = first.stopService()
    assert type(machine._data) is _Stopping and machine._data.waiters == [stopped]
    endpoint.last.lose()
    assert stopped.called
    assert machine._data is _IDLE
    second.stopService()
