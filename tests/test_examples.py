"""
The examples and the demo run as written.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_twisted
from helpers import ROOT, Process, freePort, stop, twistd, until


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.parametrize("script", ["legacy_connecttcp.py", "legacy_over_endpoint.py"])
def test_legacyExample(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "reconnected: 2 connections, all answered" in done.stdout


def test_demo() -> None:
    """
    A short run of the demo: the server is killed once, and no line is lost.
    """
    done = subprocess.run(
        [sys.executable, "-m", "reconnect.saystuff._demo", "--seconds", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no line was lost." in done.stdout
    assert "killed the server" in done.stdout


@pytest_twisted.ensureDeferred
async def test_tacFile(tmp_path: Path) -> None:
    """
    C{twistd -ny examples/saystuff.tac} talks to the bundled server.
    """
    port = freePort()
    server = twistd(tmp_path, "saystuff-server", "--port", str(port))
    client: Process | None = None
    try:
        await until(lambda: b"starting on" in server.output)
        tac = str(ROOT / "examples" / "saystuff.tac")
        client = twistd(tmp_path, "-y", tac, env={"SAYSTUFF_PORT": str(port)})
        await until(lambda: b"reply: b'hello 2'" in client.output)
    finally:
        if client is not None:
            await stop(client)
        await stop(server)


def test_asyncioExample() -> None:
    """
    C{examples/asyncio_client.py}, shown whole in README, gets its reply on
    the asyncio reactor and exits.
    """
    example = ROOT / "examples" / "asyncio_client.py"
    assert f"```python\n{example.read_text()}```" in (ROOT / "README.md").read_text()
    done = subprocess.run(
        [sys.executable, str(example)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == "hello from asyncio\n"
