"""
SayStuff: a line-based request/response client that keeps its connection up,
and the line server it talks to.
"""

from ._errors import (
    NotConnectedError,
    QueueFullError,
    RequestTimedOut,
    ServerProtocolError,
    ServiceStoppedError,
)
from ._server import EchoLineFactory, RestartableLineServer
from ._service import SayStuffToServerService

__all__ = [
    "EchoLineFactory",
    "NotConnectedError",
    "QueueFullError",
    "RequestTimedOut",
    "RestartableLineServer",
    "SayStuffToServerService",
    "ServerProtocolError",
    "ServiceStoppedError",
]
