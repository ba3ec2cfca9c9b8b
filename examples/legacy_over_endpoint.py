"""
The same legacy factory over an endpoint, through EndpointConnector: any
endpoint (TLS, UNIX, HostnameEndpoint, a string description) would do.

    python examples/legacy_over_endpoint.py
"""

from legacy_client import exercise
from twisted.internet import reactor
from twisted.internet.endpoints import clientFromString

from reconnect import EndpointConnector


def connect(port, factory):
    endpoint = clientFromString(reactor, f"tcp:host=127.0.0.1:port={port}")
    connector = EndpointConnector(endpoint, factory, reactor)
    connector.connect()
    return connector


outcome = exercise(reactor, connect)
reactor.run()
raise SystemExit(0 if outcome == [True] else 1)
