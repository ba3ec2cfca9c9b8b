"""
SayStuff: a line-based request/response client that keeps its connection up,
and the line server it talks to.
"""

from ._budget import ResendBudget
from ._errors import (
    MaybeDelivered,
    NotConnectedError,
    NotConnectedGaveUp,
    QueueFullError,
    RequestTimedOut,
    ResendBudgetExhausted,
    ServerProtocolError,
    ServiceStoppedError,
)
from ._server import EchoLineFactory, RestartableLineServer
from ._service import SayStuffToServerService

__all__ = [
    "EchoLineFactory",
    "MaybeDelivered",
    "NotConnectedError",
    "NotConnectedGaveUp",
    "QueueFullError",
    "RequestTimedOut",
    "ResendBudget",
    "ResendBudgetExhausted",
    "RestartableLineServer",
    "SayStuffToServerService",
    "ServerProtocolError",
    "ServiceStoppedError",
]
