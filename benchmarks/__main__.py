"""
Run every benchmark and print the tables; with C{--save}, write them to
C{benchmarks/results/latest.json} and into README.md (a run without it
leaves the tree as it was).

    python -m benchmarks [--quick] [--save [--plot docs/herd.png]]

Every figure with a goal is a ratio of two things measured in this run; see
each module's docstring for its anchor and method.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.logger import globalLogBeginner

from ._report import RESULTS, ROOT, goalRow, render, updateReadme
from ._timing import Comparison


def machine() -> dict[str, Any]:
    import automat

    import twisted

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "twisted": twisted.__version__,
        "automat": getattr(automat, "__version__", "?"),
        "date": time.strftime("%Y-%m-%d"),
    }


def atLeastAsFast(measure: str, anchor: str, comparison: Comparison) -> dict[str, Any]:
    """
    The goal row of a rate measured against its anchor: at least as fast.
    """
    return goalRow(
        measure,
        anchor,
        comparison.ratio,
        comparison.spread,
        ">= 1.0",
        comparison.ratio >= 1.0,
        anchorRate=round(statistics.median(comparison.anchorRates)),
        contenderRate=round(statistics.median(comparison.contenderRates)),
    )


async def goals(reactor: Any, quick: bool) -> list[dict[str, Any]]:
    """
    The measures with a goal, each a ratio against an anchor run alongside.
    """
    from . import cycles, datapath, scale, soak

    rows: list[dict[str, Any]] = []

    print("data path ...", file=sys.stderr)
    path = await datapath.run(
        reactor, rounds=3 if quick else 11, requests=3000 if quick else 20000
    )
    rows.append(
        atLeastAsFast(
            "pipelined requests/s, 500 in flight, loopback echo",
            "bare LineReceiver + FIFO of Deferreds",
            path,
        )
    )

    print("scale ...", file=sys.stderr)
    memory, stopping, _ = await scale.run(
        reactor, count=300 if quick else 3000, rounds=1 if quick else 5
    )
    rows.append(
        goalRow(
            f"memory of a connected service above the bare connection "
            f"({memory['count']} services, tracemalloc; ours / theirs)",
            "Twisted's ClientService",
            memory["ratio"],
            memory["spread"],
            "<= 0.5",
            memory["ratio"] <= 0.5,
            anchorBytes=memory["anchor_median"],
            contenderBytes=memory["contender_median"],
        )
    )
    rows.append(
        goalRow(
            f"time to stop {stopping['count']} connected services (ours / theirs)",
            "Twisted's ClientService",
            stopping["ratio"],
            stopping["spread"],
            "<= 1.0",
            stopping["ratio"] <= 1.0,
            anchorSeconds=stopping["anchor_median"],
            contenderSeconds=stopping["contender_median"],
        )
    )

    print("cycles ...", file=sys.stderr)
    for setup in cycles.SETUPS:
        comparison = cycles.run(
            setup, batches=5 if quick else 15, cycles=300 if quick else 1000
        )
        rows.append(
            atLeastAsFast(
                f"reconnect cycles/s, {setup}", "Twisted's ClientService", comparison
            )
        )

    print("soak ...", file=sys.stderr)
    soaked = await soak.restarts(reactor, count=60 if quick else 200)
    perRestart = soaked["value"]
    rows.append(
        goalRow(
            f"memory per server restart after warm-up ({soaked['restarts']} "
            "restarts; bytes, not a ratio)",
            "-",
            perRestart,
            soaked["first..last"],
            "flat: under 8 B a restart",
            abs(perRestart) < 8,
        )
    )
    return rows


async def main(reactor: Any, options: argparse.Namespace) -> None:
    from . import herd

    quick = options.quick
    report: dict[str, Any] = {"machine": machine(), "quick": quick}
    report["goals"] = await goals(reactor, quick)

    print("herd ...", file=sys.stderr)
    herdRows, outcomes = herd.run(
        clients=300 if quick else 2000, capacity=15 if quick else 100
    )
    report["herd"] = herdRows
    print("recovery ...", file=sys.stderr)
    report["recovery"] = herd.recovery(clients=100 if quick else 500)

    print(render(report))
    if options.save:
        RESULTS.write_text(json.dumps(report, indent=2) + "\n")
        updateReadme(report)
        if options.plot:
            herd.plot(outcomes, options.plot)
        print(f"\nsaved {RESULTS.relative_to(ROOT)} and README.md", file=sys.stderr)


def run() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, for a smoke run"
    )
    parser.add_argument(
        "--save",
        action="store_true",
        help="write benchmarks/results/latest.json and README's tables",
    )
    parser.add_argument("--plot", help="with --save: draw the herd plot (PNG) here")
    options = parser.parse_args()
    # Events go nowhere, for both contenders, except where a cycle benchmark
    # sets up logging of its own: logging's startup buffer would otherwise
    # hold up to 64k events and count against memory and time.
    globalLogBeginner.beginLoggingTo([], discardBuffer=True, redirectStandardIO=False)
    from twisted.internet.task import react

    def failed(failure: Any) -> Any:
        # Logging goes nowhere (above): say what went wrong here.
        failure.printTraceback(file=sys.stderr)
        return failure

    react(lambda reactor: ensureDeferred(main(reactor, options)).addErrback(failed))


run()
