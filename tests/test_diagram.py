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
    One edge per transition, and the same text twice in a row.
    """
    source = dotSource()
    edges = [line for line in source.splitlines() if " -> " in line]
    transitions = _ClientMachine._machine._automaton.allTransitions()
    assert len(edges) == len(transitions)
    assert '"connected" -> "waiting" [label="_clientDisconnected' in source
    assert dotSource() == source


def test_renderedDiagramsCommitted() -> None:
    """
    README shows the SVG; the PNG is beside it.
    """
    for name in ("clientservice.svg", "clientservice.png"):
        assert (DOCS / name).stat().st_size > 1000
