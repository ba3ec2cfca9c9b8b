"""
User code whose every callable behaves as its mood says: it may behave,
raise, fail or return nonsense.  The user-code state machines
(tests/test_usercode.py) and the worlds of the differential and exhaustive
tests (tests/worlds.py) each set the moods from lists of their own, and say
what a policy in the C{"ok"} mood returns.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IProtocol, IProtocolFactory
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from reconnect import ClientService
from reconnect.testing import FakeEndpoint


class Boom(Exception):
    """
    What misbehaving user code raises.
    """


class Moods:
    """
    A retry policy, C{isFatal}, C{prepareConnection}, a callback for every
    event and C{retireConnection}, each as its mood says.

    @ivar prepared: the Deferreds C{prepareConnection} returned in the
        C{"hang"} mood, in order, for the caller to fire (or not).
    @ivar kept: the connections C{retireConnection} left open, in the
        C{"keep"} mood.
    """

    def __init__(self, prepare: str) -> None:
        self.policy = "ok"
        self.fatal = "no"
        self.prepare = prepare
        self.callbacks = "ok"
        self.connect = "ok"
        self.retire = "close"
        self.prepared: list[Deferred[None]] = []
        self.kept: list[IProtocol] = []

    def delay(self, attempt: int) -> Optional[float]:
        """
        What the policy returns in the C{"ok"} mood.
        """
        raise NotImplementedError

    def retryPolicy(self, attempt: int) -> object:
        if self.policy == "ok":
            return self.delay(attempt)
        if self.policy == "raise":
            raise Boom("policy")
        return {"none": None, "nan": math.nan, "negative": -1.0, "string": "1"}[
            self.policy
        ]

    def isFatal(self, reason: Failure) -> object:
        if self.fatal == "raise":
            raise Boom("isFatal")
        return self.fatal == "yes"

    def prepareConnection(self, protocol: IProtocol) -> object:
        if self.prepare == "raise":
            raise Boom("prepare")
        if self.prepare == "fail":
            return fail(Boom("prepare failed"))
        if self.prepare == "hang":
            prepared: Deferred[None] = Deferred()
            self.prepared.append(prepared)
            return prepared
        if self.prepare == "nonsense":
            return "nonsense"
        return succeed(None)

    def callback(self, *args: object) -> None:
        if self.callbacks == "raise":
            raise Boom("callback")

    def retireConnection(self, protocol: IProtocol) -> None:
        if self.retire == "raise":
            raise Boom("retire")
        if self.retire == "keep":
            self.kept.append(protocol)
        else:
            protocol.transport.loseConnection()  # type: ignore[attr-defined]

    def serviceOver(
        self, endpoint: FakeEndpoint, clock: Clock, handsOver: bool, **options: Any
    ) -> ClientService:
        """
        A L{ClientService} over C{endpoint} on C{clock} whose user code is
        this: its policy, C{isFatal}, C{prepareConnection}, C{callback} on
        connecting and disconnecting, and (if it C{handsOver} connections)
        C{retireConnection}; with C{options} besides.
        """
        return ClientService(
            endpoint,
            Factory.forProtocol(Protocol),
            self.retryPolicy,  # type: ignore[arg-type]
            clock=clock,
            prepareConnection=self.prepareConnection,
            isFatal=self.isFatal,  # type: ignore[arg-type]
            onConnected=self.callback,
            onDisconnected=self.callback,
            retireConnection=self.retireConnection if handsOver else None,
            **options,
        )


class MoodyEndpoint(FakeEndpoint):
    """
    A L{FakeEndpoint} whose C{connect} may raise or return nonsense.
    """

    def __init__(self, mood: Moods) -> None:
        super().__init__()
        self.mood = mood

    def connect(self, protocolFactory: IProtocolFactory) -> Any:
        if self.mood.connect == "raise":
            raise Boom("connect")
        if self.mood.connect == "nonsense":
            return 42
        return super().connect(protocolFactory)
