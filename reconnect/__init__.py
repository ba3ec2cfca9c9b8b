"""
reconnect: outgoing Twisted connections that stay up.

The public API; everything else lives in private modules.
"""

from ._backoff import (
    RetryPolicy,
    backoffPolicy,
    decorrelatedJitterPolicy,
    fullJitterPolicy,
    limitRetries,
)
from ._debugevents import getDebugEvents, setDebugEvents
from ._errors import AttemptTimedOut, GaveUpConnecting
from ._failover import AllEndpointsFailed, EndpointHealth, FailoverEndpoint
from ._keepalive import TCPKeepAlive
from ._legacy import EndpointConnector, ReconnectingClientFactory
from ._service import ClientService
from ._stats import ConnectionStats
from ._version import __version__ as __version__

__all__ = [
    "AllEndpointsFailed",
    "AttemptTimedOut",
    "ClientService",
    "ConnectionStats",
    "EndpointConnector",
    "EndpointHealth",
    "FailoverEndpoint",
    "GaveUpConnecting",
    "ReconnectingClientFactory",
    "RetryPolicy",
    "TCPKeepAlive",
    "backoffPolicy",
    "decorrelatedJitterPolicy",
    "fullJitterPolicy",
    "getDebugEvents",
    "limitRetries",
    "setDebugEvents",
]
