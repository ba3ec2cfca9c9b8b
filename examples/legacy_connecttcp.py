"""
The legacy factory through reactor.connectTCP, as legacy code runs it.

    python examples/legacy_connecttcp.py
"""

from legacy_client import exercise
from twisted.internet import reactor


def connect(port, factory):
    return reactor.connectTCP("127.0.0.1", port, factory)


outcome = exercise(reactor, connect)
reactor.run()
raise SystemExit(0 if outcome == [True] else 1)
