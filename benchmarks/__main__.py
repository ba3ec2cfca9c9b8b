"""
Run every benchmark, print the table and write it as JSON.

    python -m benchmarks [--quick] [--plot docs/herd.png] [--json PATH]

Every figure is a ratio of two things measured in this run; see each
module's docstring for its anchor and method.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.logger import globalLogBeginner


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


def table(rows: list[dict[str, Any]]) -> str:
    """
    The rows as a Markdown table, one per kind of row.
    """
    out: list[str] = []
    kinds: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        kinds.setdefault(tuple(row), []).append(row)
    for columns, group in kinds.items():
        out.append("| " + " | ".join(columns) + " |")
        out.append("|" + "---|" * len(columns))
        for row in group:
            out.append("| " + " | ".join(str(row[c]) for c in columns) + " |")
        out.append("")
    return "\n".join(out)


async def main(reactor: Any, options: argparse.Namespace) -> None:
    from . import cycles, datapath, herd, scale

    quick = options.quick
    rows: list[dict[str, Any]] = []

    print("cycles ...", file=sys.stderr)
    rows.append(
        cycles.run(batches=5 if quick else 15, cycles=300 if quick else 1000).row()
    )
    rows[-1]["inputs per cycle (reconnect)"] = cycles.inputsPerCycle()

    print("data path ...", file=sys.stderr)
    rows.append(
        (
            await datapath.run(
                reactor, rounds=3 if quick else 9, requests=3000 if quick else 20000
            )
        ).row()
    )

    print("scale ...", file=sys.stderr)
    rows.extend(
        await scale.run(reactor, count=300 if quick else 2000, rounds=1 if quick else 3)
    )

    print("herd ...", file=sys.stderr)
    herdRows, outcomes = herd.run(
        clients=300 if quick else 2000, capacity=15 if quick else 100
    )
    rows.extend(herdRows)
    if options.plot:
        herd.plot(outcomes, options.plot)

    print("recovery ...", file=sys.stderr)
    rows.extend(herd.recovery(clients=100 if quick else 500))

    report = {"machine": machine(), "rows": rows}
    print(f"machine: {report['machine']}\n")
    print(table(rows))
    if options.json:
        Path(options.json).parent.mkdir(parents=True, exist_ok=True)
        Path(options.json).write_text(json.dumps(report, indent=2) + "\n")


def run() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, for a smoke run"
    )
    parser.add_argument("--plot", help="write the herd plot (PNG) here")
    parser.add_argument(
        "--json", default="benchmarks/results/latest.json", help="write the table here"
    )
    options = parser.parse_args()
    # Events go nowhere, for both contenders: logging's startup buffer would
    # otherwise hold up to 64k events and count against memory and time.
    globalLogBeginner.beginLoggingTo([], discardBuffer=True, redirectStandardIO=False)
    from twisted.internet.task import react

    react(lambda reactor: ensureDeferred(main(reactor, options)))


run()
