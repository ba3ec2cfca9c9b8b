"""
Measuring as ratios: a contender and its anchor run in alternating batches
in one process; each pair of neighbouring batches gives one ratio, and the
median of those is reported, so that a slow spell of the machine, which
slows both batches of a pair, does not move it.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Comparison:
    """
    Rates (operations per second) of a contender and its anchor, batch by
    batch.
    """

    name: str
    anchor: str
    contender: str
    unit: str
    anchorRates: list[float] = field(default_factory=list)
    contenderRates: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        """
        The contender's rate over the anchor's, pair by pair: above 1, the
        contender is faster.
        """
        return [
            contender / anchor
            for anchor, contender in zip(
                self.anchorRates, self.contenderRates, strict=True
            )
        ]

    @property
    def ratio(self) -> float:
        """
        The median of L{ratios}.
        """
        return statistics.median(self.ratios)

    @property
    def spread(self) -> str:
        """
        The lowest and highest of L{ratios}.
        """
        return f"{min(self.ratios):.2f}-{max(self.ratios):.2f}"

    def row(self) -> dict[str, object]:
        return {
            "benchmark": self.name,
            "anchor": self.anchor,
            "contender": self.contender,
            "unit": self.unit,
            "anchor_median": round(statistics.median(self.anchorRates), 1),
            "contender_median": round(statistics.median(self.contenderRates), 1),
            "ratio": round(self.ratio, 3),
            "spread": self.spread,
            "batches": len(self.anchorRates),
        }


def alternate(
    comparison: Comparison,
    anchor: Callable[[], int],
    contender: Callable[[], int],
    batches: int,
) -> Comparison:
    """
    Run C{anchor} and C{contender} in turn, C{batches} times each (which goes
    first alternates too); each returns how many operations it did.
    """
    for batch in range(batches):
        pair = [
            (anchor, comparison.anchorRates),
            (contender, comparison.contenderRates),
        ]
        if batch % 2:
            pair.reverse()
        for run, rates in pair:
            gc.collect()
            start = time.perf_counter()
            operations = run()
            rates.append(operations / (time.perf_counter() - start))
    return comparison
