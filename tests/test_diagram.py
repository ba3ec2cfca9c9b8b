"""
The committed state diagram is the machine's own.
"""

from __future__ import annotations

from pathlib import Path

from reconnect._diagram import dotSource
from reconnect._machine import _ClientMachine

DOCS = Path(__file__).parent.parent / "docs"


def test_committedDiagramIsCurrent() -> None:
    """
    docs/clientservice.dot is what the machine draws now; if this fails,
    run C{python -m reconnect._diagram docs} (or C{tox -e docs}) and commit
    the result.
    """
    assert (DOCS / "clientservice.dot").read_text() == dotSource()


def test_diagramHasEveryTransition() -> None:
    """
    One edge per transition that does something, each input a state
    ignores named in the state's node, and the same text twice in a row.
    """
    source = dotSource()
    edges = [line for line in source.splitlines() if " -> " in line]
    ignores = [
        name.strip()
        for line in source.splitlines()
        if "ignores " in line
        for name in line.split("ignores ")[1].split('"')[0].split(",")
    ]
    transitions = _ClientMachine._machine._automaton.allTransitions()
    doing = [t for t in transitions if t[0] is not t[2] or t[3]]
    assert len(edges) == len(doing)
    assert len(ignores) == len(transitions) - len(doing)
    assert '"connected" -> "waiting" [label="_retryLater' in source
    assert (
        '"stopped" [label="stopped\\nignores closeAndReconnect, dropAndReconnect, '
        'dropAsFailed, handOver"]'
    ) in source
    assert dotSource() == source


def test_renderedDiagramsCommitted() -> None:
    """
    README shows the SVG; the PNG is beside it.
    """
    for name in ("clientservice.svg", "clientservice.png"):
        assert (DOCS / name).stat().st_size > 1000
