"""
Draw L{reconnect.ClientService}'s state machine from its own transitions::

    python -m reconnect._diagram docs

writes C{docs/clientservice.dot}, and, where Graphviz's C{dot} program is
installed, C{docs/clientservice.svg} and C{docs/clientservice.png}.

automat can draw a machine too (C{asDigraph}), but it numbers the
transitions in the order of a set, which changes from run to run; this
drawing comes out the same every time, so a test can tell when the
committed one is stale.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from ._driver import transitionsOf
from ._machine import _ClientMachine


def dotSource() -> str:
    """
    The machine in Graphviz's DOT language: a node per state, listing the
    inputs the state ignores (those that change nothing and do nothing);
    and an edge per other transition, labelled with its input and, below,
    its outputs.
    """
    initial, states, transitions = transitionsOf(_ClientMachine._machine)
    ignored: dict[str, list[str]] = {state: [] for state in states}
    edges = []
    for transition in sorted(transitions, key=lambda t: (t[0], t[1], t[2])):
        inState, inputName, outState, outputs = transition
        if inState == outState and not outputs:
            ignored[inState].append(inputName)
        else:
            edges.append(transition)
    lines = [
        "digraph ClientService {",
        "    graph [fontname=Helvetica, nodesep=0.5, ranksep=0.7];",
        "    node [shape=ellipse, fontname=Helvetica, fontsize=12];",
        "    edge [fontname=Helvetica, fontsize=9];",
    ]
    for state in sorted(states):
        style = ", style=bold, penwidth=2" if state == initial else ""
        label = state
        if ignored[state]:
            label += "\\nignores " + ", ".join(ignored[state])
        lines.append(f'    "{state}" [label="{label}"{style}];')
    for inState, inputName, outState, outputs in edges:
        label = inputName
        if outputs:
            label += "\\n" + ", ".join(outputs)
        lines.append(f'    "{inState}" -> "{outState}" [label="{label}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def write(directory: Path) -> list[Path]:
    """
    Write the DOT source, and render it if C{dot} is on the path.
    """
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "clientservice.dot"
    source.write_text(dotSource())
    written = [source]
    dot = shutil.which("dot")
    if dot is None:
        print("Graphviz's dot is not installed: wrote only the DOT source.")
        return written
    for format in ("svg", "png"):
        target = directory / f"clientservice.{format}"
        subprocess.run(
            [dot, f"-T{format}", "-Gdpi=96", str(source), "-o", str(target)],
            check=True,
        )
        written.append(target)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")):
        print(path)
