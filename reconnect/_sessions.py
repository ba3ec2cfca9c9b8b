"""
What an endpoint over several servers needs to hear from each client that
connects through it, and how it asks one to move: an optional interface,
so that the services drive any endpoint and know no endpoint class.

An endpoint that provides L{ISessionEndpoint} gives each client (a
L{reconnect.ClientService}, an L{reconnect.EndpointConnector}) an
L{IEndpointSession} of its own when the client starts, and the client
connects through the session rather than the endpoint.  Whatever is about
one client (the server it is on, its failback probe, its order of servers)
lives in its session; what is known about the servers is the endpoint's, and
shared.  When the client stops, it closes its session, and the endpoint
keeps nothing of it.  A plain C{connect()} on the endpoint, with no session,
still works.

L{reconnect.FailoverEndpoint} provides it; an endpoint of your own over
several servers may too.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IStreamClientEndpoint
from zope.interface import Attribute, Interface


class ISessionEndpoint(Interface):
    """
    A client endpoint that wants a session with each client connecting
    through it.
    """

    failsOver = Attribute(
        """
        C{True} if a connection lost through this endpoint can be replaced
        at once through another of its servers: a L{reconnect.ClientService}
        over it then connects again at once when a steady connection is
        lost (C{immediateFailover}), rather than waiting out its policy.
        A value that is not a C{bool} is asked for its truth at each lost
        connection (so that an endpoint whose servers change can answer for
        the ones it has then); its C{__bool__} must not raise.
        """
    )

    def openSession(move: Callable[[], object]) -> IEndpointSession:  # noqa: N805
        """
        A client starts: its own session.

        @param move: a 0-argument callable the session may call at any time
            until it is closed, to ask the client to connect again now,
            through the session, and to let go of its current connection
            (once the new one is ready, if the client can do that): for
            failback, a better server being up again.  A call while the
            client is connecting, or not connected, may be ignored.
        @return: the client's session.
        """


class IEndpointSession(IStreamClientEndpoint, Interface):
    """
    One client's use of an L{ISessionEndpoint}: the client connects through
    its C{connect} (a session is a C{IStreamClientEndpoint}), tells it when the
    connection it made ended by itself, and closes it when it stops.
    """

    def connectionEnded(secondsUp: float) -> None:  # noqa: N805
        """
        The current connection, made through this session, ended by itself
        (not closed by the client on purpose) after C{secondsUp} seconds;
        the client will connect again.
        """

    def close() -> None:
        """
        The client stopped: nothing stays scheduled for it, C{move} is not
        called again, and the endpoint keeps no reference to the client.
        An attempt still under way through the session may be cancelled
        by the client; its outcome changes nothing.  Closing twice is
        allowed.
        """
