"""
The order in which a client tries the servers of an SRV record set, as RFC
2782 lays it down: every server of the lowest priority first, in an order
drawn at random by weight, then those of the next priority, and so on.

A pure function over plain values, so that the rule can be checked on its
own, and a source of random numbers that a test can stand in for.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Iterable
from itertools import groupby
from typing import NamedTuple


class SRVTarget(NamedTuple):
    """
    One server named by an SRV record.

    @ivar priority: lower is preferred; a higher priority is tried only
        after every server of the lower ones.
    @ivar weight: among servers of one priority, each is chosen first in
        proportion to its weight; weight 0 means "only when nothing else
        is left, or by a very small chance".
    @ivar port: the server's port.
    @ivar host: the server's host name, without the final dot.
    """

    priority: int
    weight: int
    port: int
    host: str


def rfc2782Order(
    targets: Iterable[SRVTarget],
    randint: Callable[[int, int], int] = _random.randint,
) -> list[SRVTarget]:
    """
    Put C{targets} in the order in which a client is to try them.

    Priorities ascend.  Within one priority the servers are chosen one at
    a time, each with a running sum of the weights of those not chosen
    yet: a number is drawn between 0 and the total (both included), and
    the first whose running sum reaches it is next.  Servers of weight 0
    head the list, so that the draw of 0 picks one of them: they get a
    small chance, as the RFC wants, and come last otherwise.

    The servers of weight 0 are shuffled first (with C{randint}), so that
    the draw of 0, and the order of a priority whose weights are all 0,
    picks among them at random: in the order given, or by name, every
    client of a fleet would go to the same server.  The RFC lets the other
    servers stand in any order for the running sum, which does not change
    their chances; we sort them by weight (ascending, then by host and
    port), so that the result depends only on the draws.

    @param randint: C{randint(low, high)} draws an integer in C{[low,
        high]}, both ends included, as C{random.randint} does.
    @return: every target once (equal records kept as often as given).
    """
    ordered: list[SRVTarget] = []
    byPriority = sorted(targets, key=lambda t: t.priority)
    for _, group in groupby(byPriority, key=lambda t: t.priority):
        left = zeroWeightsShuffled(list(group), randint)
        while left:
            ordered.append(left.pop(_drawIndex(left, randint)))
    return ordered


def zeroWeightsShuffled(
    targets: list[SRVTarget], randint: Callable[[int, int], int]
) -> list[SRVTarget]:
    """
    C{targets} for the running sum: those of weight 0 first, in an order
    drawn at random (uniformly, C{len - 1} draws of C{randint}), then the
    others by weight, host and port.
    """
    zeros = sorted(
        (t for t in targets if t.weight == 0), key=lambda t: (t.host, t.port)
    )
    for i in range(len(zeros) - 1, 0, -1):
        j = randint(0, i)
        if not 0 <= j <= i:
            raise ValueError(f"randint(0, {i}) returned {j!r}")
        zeros[i], zeros[j] = zeros[j], zeros[i]
    weighted = sorted(
        (t for t in targets if t.weight != 0), key=lambda t: (t.weight, t.host, t.port)
    )
    return zeros + weighted


def _drawIndex(left: list[SRVTarget], randint: Callable[[int, int], int]) -> int:
    """
    The index of the next target among C{left} (weights ascending), by
    RFC 2782's running sum.
    """
    drawn = randint(0, sum(t.weight for t in left))
    runningSum = 0
    for index, target in enumerate(left):
        runningSum += target.weight
        if runningSum >= drawn:
            return index
    raise ValueError(f"randint(0, total) returned {drawn!r}, beyond the total")
