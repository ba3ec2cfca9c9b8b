"""
The benchmark report: README's tables are the saved results, rendered; a
run without C{--save} writes nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks._report import README, RESULTS, ROOT, currentReadmeBlock, readmeBlock


def test_readmeTablesAreTheSavedResults() -> None:
    """
    README's benchmark tables are what C{python -m benchmarks --save} made
    of C{benchmarks/results/latest.json}, not typed by hand.
    """
    report = json.loads(RESULTS.read_text())
    assert currentReadmeBlock(README.read_text()) == readmeBlock(report)


@pytest.mark.slow
def test_quickRunLeavesTheTreeAlone() -> None:
    """
    C{python -m benchmarks --quick} runs every measure, prints the goals
    table, and changes neither the results file nor README.
    """
    before = (RESULTS.read_bytes(), README.read_bytes())
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert "| measure | anchor | ratio | spread | goal | met |" in run.stdout
    for measure in [
        "pipelined requests/s",
        "memory of a connected service",
        "time to stop",
        "reconnect cycles/s",
        "memory per server restart",
    ]:
        assert measure in run.stdout, measure
    assert (RESULTS.read_bytes(), README.read_bytes()) == before
