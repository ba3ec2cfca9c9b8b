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
from ._failover import FailoverEndpoint
from ._keepalive import TCPKeepAlive
from ._legacy import EndpointConnector, ReconnectingClientFactory
from ._pass import AllEndpointsFailed, EndpointHealth
from ._service import ClientService
from ._sessions import IEndpointSession, ISessionEndpoint
from ._srv import SRVEndpoint
from ._srvconnector import SRVConnector
from ._srvlookup import NoServiceRecords, ServiceNotOffered
from ._stats import ConnectionStats
from ._tls import isCertificateError
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
    "IEndpointSession",
    "ISessionEndpoint",
    "NoServiceRecords",
    "ReconnectingClientFactory",
    "RetryPolicy",
    "SRVConnector",
    "SRVEndpoint",
    "ServiceNotOffered",
    "TCPKeepAlive",
    "backoffPolicy",
    "decorrelatedJitterPolicy",
    "fullJitterPolicy",
    "getDebugEvents",
    "isCertificateError",
    "limitRetries",
    "setDebugEvents",
]
