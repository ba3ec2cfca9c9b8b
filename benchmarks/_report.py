"""
The benchmark report: the goals table and the herd tables as Markdown, made
from a run's results, and the README's copy of them, rewritten from the saved
results only (a test checks that the README says what the results file says).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "latest.json"
README = ROOT / "README.md"
BEGIN = "<!-- benchmarks: made by python -m benchmarks --save; do not edit -->"
END = "<!-- benchmarks: end -->"


def goalRow(
    measure: str,
    anchor: str,
    ratio: float,
    spread: str,
    goal: str,
    met: bool,
    **figures: Any,
) -> dict[str, Any]:
    """
    One row of the goals table.
    """
    return {
        "measure": measure,
        "anchor": anchor,
        "ratio": round(ratio, 3),
        "spread": spread,
        "goal": goal,
        "met": met,
        "figures": figures,
    }


def markdown(rows: list[dict[str, Any]], columns: dict[str, str]) -> str:
    """
    C{rows} as a Markdown table: C{columns} maps each key to its heading.
    """
    lines = [
        "| " + " | ".join(columns.values()) + " |",
        "|" + " --- |" * len(columns),
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(row[key]) for key in columns) + " |")
    return "\n".join(lines)


def goalsTable(goals: list[dict[str, Any]]) -> str:
    rows = [
        dict(goal, met="yes" if goal["met"] else "**no**", ratio=f"{goal['ratio']:g}")
        for goal in goals
    ]
    return markdown(
        rows,
        {key: key for key in ("measure", "anchor", "ratio", "spread", "goal", "met")},
    )


def herdTable(rows: list[dict[str, Any]]) -> str:
    return markdown(
        [
            {
                "policy": row["policy"],
                "peak": row["peak attempts per 100 ms after return"],
                "all": f"{row['all back after (s)']} s",
                "median": f"{row['median client back after (s)']} s",
            }
            for row in rows
        ],
        {
            "policy": "policy",
            "peak": "peak attempts per 100 ms after return",
            "all": "all back after",
            "median": "median client back after",
        },
    )


def recoveryTable(rows: list[dict[str, Any]]) -> str:
    return markdown(
        [
            {
                "outage": row["benchmark"].split("a ", 1)[1].split(" outage")[0],
                "policy": row["policy"],
                "median": f"{row['median (s)']} s",
                "p99": f"{row['p99 (s)']} s",
            }
            for row in rows
        ],
        {key: key for key in ("outage", "policy", "median", "p99")},
    )


def render(report: dict[str, Any]) -> str:
    """
    The README's benchmark section body, from a saved report.
    """
    machine = report["machine"]
    herd = report["herd"]
    parts = [
        f"Run of {machine['date']}: {machine['cpus']} cores, Python "
        f"{machine['python']}, Twisted {machine['twisted']}"
        f"{', quick sizes' if report.get('quick') else ''}. Each ratio is the "
        "median of per-pair ratios of batches run alternately in one process; "
        "the spread is the lowest and highest pair.",
        "",
        goalsTable(report["goals"]),
        "",
        f"Herd: {herd[0]['benchmark'].split(': ', 1)[1]} (virtual time, exact "
        "for a given seed):",
        "",
        herdTable(herd),
        "",
        "Recovery: seconds from the server's return until a client is "
        "connected again (virtual time), with no capacity limit:",
        "",
        recoveryTable(report["recovery"]),
    ]
    return "\n".join(parts)


def readmeBlock(report: dict[str, Any]) -> str:
    return f"{BEGIN}\n{render(report)}\n{END}"


def currentReadmeBlock(text: str) -> str:
    """
    The generated block as the README has it now.

    @raise ValueError: if the README has no such block.
    """
    found = re.search(re.escape(BEGIN) + ".*?" + re.escape(END), text, re.DOTALL)
    if found is None:
        raise ValueError("README.md has no generated benchmark block")
    return found.group(0)


def updateReadme(report: dict[str, Any], path: Path = README) -> None:
    text = path.read_text()
    path.write_text(text.replace(currentReadmeBlock(text), readmeBlock(report)))
