"""
What the stand-alone benchmarks (C{python -m benchmarks.NAME}) share: run
one measurement on the reactor, print its figures, and save them under
C{benchmarks/results/NAME.json} when asked.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import react

RESULTS = Path(__file__).parent / "results"


def printAndSave(
    measure: Callable[[Any], Awaitable[dict[str, Any]]], name: str, save: bool
) -> None:
    """
    Run C{measure(reactor)}, print what it returns as JSON, and write it to
    C{results/name.json} if C{save}.
    """

    async def go(reactor: Any) -> None:
        figures = await measure(reactor)
        text = json.dumps(figures, indent=2)
        print(text)
        if save:
            (RESULTS / f"{name}.json").write_text(text + "\n")

    react(lambda reactor: ensureDeferred(go(reactor)))
