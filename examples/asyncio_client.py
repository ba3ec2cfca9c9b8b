"""
reconnect from an asyncio program: Twisted's asyncio reactor runs on the
program's event loop, and each Deferred becomes a future with asFuture.
"""

import asyncio

from twisted.internet import asyncioreactor

loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
asyncioreactor.install(loop)  # before anything imports twisted.internet.reactor

from twisted.internet import reactor  # noqa: E402

from reconnect.saystuff import RestartableLineServer, SayStuffToServerService  # noqa: E402


async def main() -> None:
    server = RestartableLineServer(reactor)  # the bundled echo server
    port = await server.start().asFuture(loop)
    service = SayStuffToServerService(endpoint=f"tcp:127.0.0.1:{port}")
    service.startService()
    await service.clientService.whenConnected().asFuture(loop)
    reply = await service.sendToServer(b"hello from asyncio").asFuture(loop)
    print(reply.decode())
    await service.stopService().asFuture(loop)
    await server.kill().asFuture(loop)


loop.run_until_complete(main())
