"""
Whether reconnect emits its debug-level events.

Debug events (an attempt starting, a stop or restart under way, a socket
with no keepalive to set, one endpoint of a failover pass failing) say more
than a running service needs said, and cost as much as any other event:
C{twisted.logger} cannot tell whether an observer will keep one, and
C{twistd} keeps and formats them all.  So, like C{Deferred.setDebugging},
they are off until asked for: with L{setDebugEvents}, or by starting the
process with the environment variable C{RECONNECT_DEBUG_EVENTS=1}.  Off,
such an event costs one check of a flag.
"""

from __future__ import annotations

import os

ENVIRONMENT = "RECONNECT_DEBUG_EVENTS"

enabled = os.environ.get(ENVIRONMENT, "") not in ("", "0")


def setDebugEvents(on: bool) -> None:
    """
    Emit debug-level events (C{on}) or not, from now on, for every service.

    @raise TypeError: if C{on} is not a bool.
    """
    global enabled
    if not isinstance(on, bool):
        raise TypeError(f"setDebugEvents takes a bool, not {on!r}")
    enabled = on


def getDebugEvents() -> bool:
    """
    Whether debug-level events are emitted.
    """
    return enabled
