"""
A ReconnectingClientFactory subclass as legacy code writes it.  Only the
import differs from code written for Twisted's own factory.
"""

from twisted.protocols.basic import LineReceiver

from reconnect import ReconnectingClientFactory


class Greeter(LineReceiver):
    def connectionMade(self):
        self.factory.resetDelay()
        self.factory.connections += 1
        self.sendLine(b"hello, connection %d" % self.factory.connections)

    def lineReceived(self, line):
        print("server said:", line.decode())
        self.factory.heard.append(line)


class GreeterFactory(ReconnectingClientFactory):
    protocol = Greeter
    noisy = False
    initialDelay = 0.1
    maxDelay = 2.0

    def __init__(self):
        self.connections = 0
        self.heard = []


def exercise(reactor, connect):
    """
    Start the bundled server, connect with C{connect(port, factory)}, kill
    and restart the server once, then stop trying: the factory must have
    reconnected and been answered twice.

    @return: a list that holds C{True} once that has happened, or C{False}
        if something went wrong.
    """
    from twisted.internet.defer import ensureDeferred
    from twisted.internet.task import deferLater

    from reconnect.saystuff import RestartableLineServer

    async def run():
        server = RestartableLineServer(reactor)
        port = await server.start()
        factory = GreeterFactory()
        connector = connect(port, factory)
        while len(factory.heard) < 1:
            await deferLater(reactor, 0.05, lambda: None)
        print("killing the server")
        await server.kill()
        await deferLater(reactor, 0.5, lambda: None)
        print("restarting the server")
        await server.start()
        while len(factory.heard) < 2:
            await deferLater(reactor, 0.05, lambda: None)
        factory.stopTrying()
        connector.disconnect()
        await server.kill()
        print(f"reconnected: {factory.connections} connections, all answered")
        return True

    def crashed(failure):
        failure.printTraceback()
        return False

    outcome = []
    done = ensureDeferred(run())
    done.addErrback(crashed)
    done.addCallback(outcome.append)
    done.addBoth(lambda _: reactor.stop())
    return outcome
