"""
The exceptions that L{reconnect.ClientService} hands to its callers.
"""

from __future__ import annotations

from twisted.python.failure import Failure


class AttemptTimedOut(Exception):
    """
    A connection attempt (connect plus C{prepareConnection}) took longer
    than the service's C{attemptTimeout} and was abandoned.

    @ivar timeout: the limit, in seconds.
    """

    def __init__(self, timeout: float) -> None:
        super().__init__(f"connection attempt took longer than {timeout} seconds")
        self.timeout = timeout


class GaveUpConnecting(Exception):
    """
    The service stopped trying to connect: its retry policy said no more, or
    a failure was judged fatal.

    @ivar failure: the C{Failure} of the last attempt.
    @ivar attempts: how many attempts had failed in a row.
    """

    def __init__(self, failure: Failure, attempts: int) -> None:
        super().__init__(
            f"gave up connecting after {attempts} failed attempt(s); "
            f"last failure: {failure.getErrorMessage()}"
        )
        self.failure = failure
        self.attempts = attempts
