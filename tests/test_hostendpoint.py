"""
The endpoint that C{SayStuffToServerService(host, port)} makes: an address
is connected to with no name resolution, and a host name that could never
be resolved fails its attempts saying why, instead of waiting for ever.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import pytest_twisted
from helpers import ROOT, ResolvingMemoryReactor
from twisted.internet import reactor
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
)

from reconnect._describe import describeEndpoint
from reconnect.saystuff import RestartableLineServer, SayStuffToServerService
from reconnect.saystuff._endpoint import hostEndpoint


@pytest.mark.parametrize(
    "host, kind, description",
    [
        ("127.0.0.1", TCP4ClientEndpoint, "tcp:127.0.0.1:7"),
        ("::1", TCP6ClientEndpoint, "tcp6:::1:7"),
        ("example.invalid", HostnameEndpoint, "tcp:example.invalid:7"),
    ],
)
def test_endpointOfHost(host: str, kind: type, description: str) -> None:
    endpoint = hostEndpoint(ResolvingMemoryReactor(), host, 7)
    assert isinstance(endpoint, kind)
    assert describeEndpoint(endpoint) == description


def test_addressNeedsNoResolver() -> None:
    """
    An address is connected to at once, with no name resolution: the
    reactor's connectTCP is called with the address itself.
    """
    memory = ResolvingMemoryReactor()
    service = SayStuffToServerService("127.0.0.1", 7, reactor=memory)
    service.startService()
    assert memory.tcpClients[0][:2] == ("127.0.0.1", 7)
    service.stopService()


@pytest_twisted.ensureDeferred
async def test_nameOnARunningReactor() -> None:
    """
    A host name is resolved and connected to as before while the reactor
    runs.
    """
    server = RestartableLineServer(reactor)
    port = await server.start()
    service = SayStuffToServerService("localhost", port)
    service.startService()
    try:
        assert await service.sendToServer(b"by name") == b"by name"
    finally:
        await service.stopService()
        await server.kill()


ASYNCIO_PROGRAM = """
import asyncio
import sys

from twisted.internet import asyncioreactor

loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
asyncioreactor.install(loop)

from twisted.internet import reactor

from reconnect.saystuff import RestartableLineServer, SayStuffToServerService


async def main(host):
    server = RestartableLineServer(reactor)
    port = await server.start().asFuture(loop)
    service = SayStuffToServerService(host, port)
    service.startService()
    connected = service.clientService.whenConnected(failAfterFailures=1)
    try:
        await asyncio.wait_for(connected.asFuture(loop), 20)
        reply = await service.sendToServer(b"hello").asFuture(loop)
        print("reply:", reply.decode())
    except asyncio.TimeoutError:
        print("still", service.clientService.state)
    except Exception as error:
        print("failed:", error)
    await service.stopService().asFuture(loop)
    await server.kill().asFuture(loop)


loop.run_until_complete(main(sys.argv[1]))
"""


@pytest.mark.parametrize(
    "host, expected",
    [
        ("127.0.0.1", "reply: hello"),
        (
            "localhost",
            "failed: DNS lookup failed: cannot resolve 'localhost': Twisted "
            "resolves host names in the reactor's thread pool, which starts "
            "with reactor.run(), and this asyncio event loop runs without it",
        ),
    ],
)
def test_asyncioProgramWithoutReactorRun(host: str, expected: str) -> None:
    """
    On the asyncio reactor under C{loop.run_until_complete}, which never
    starts the reactor's thread pool: an address connects, and a host name
    fails its attempt at once, saying why.
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(ASYNCIO_PROGRAM), host],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(expected), done.stdout + done.stderr
