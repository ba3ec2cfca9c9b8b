"""
Every shell command in README.md and docs/guide.md, run as written.

The commands are read from the documents' C{```sh} blocks, so a command
that changes there changes here.  Each must be one this module knows how to
run (a new one fails L{test_everyCommandIsKnown} until it is taught here):
most run exactly as written, in a copy of the project, with the bundled
server where they need one.  Two kinds are checked rather than run, because
running them here would run this suite inside itself: the test command
(C{python -m pytest}), which must be the command C{.ci/run} runs, and the
C{tox} and C{.ci/run} lines, whose environments must exist.
"""

from __future__ import annotations

import fcntl
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ROOT

DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "guide.md"]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)

INSTALL = "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]'"
SERVER = "twistd -n --pidfile= saystuff-server &"
TESTS = "python -m pytest"


@pytest.fixture
def defaultPortLock() -> Iterator[None]:
    """
    Hold, while the test runs, a lock for the port the documents' server
    listens on (the default, 65432): no two tests that start it run at
    once, in one run's pytest-xdist workers or in several runs on one
    machine.
    """
    path = Path(tempfile.gettempdir()) / "reconnect-tests-port-65432.lock"
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


DEFAULT_PORT = pytest.mark.usefixtures("defaultPortLock")


def blocks(path: Path, language: str) -> list[str]:
    """
    The fenced blocks of C{language} in the document at C{path}.
    """
    return [body for lang, body in FENCE.findall(path.read_text()) if lang == language]


def commands(path: Path) -> list[str]:
    """
    Each command line of the document's C{sh} blocks, without its trailing
    comment.
    """
    found = []
    for block in blocks(path, "sh"):
        for line in block.splitlines():
            command = re.sub(r"\s+#\s.*$", "", line).strip()
            if command:
                found.append(command)
    return found


ALL = {command for document in DOCUMENTS for command in commands(document)}
CHECKED = {TESTS, "bash .ci/run"} | {c for c in ALL if c.startswith("tox")}
RUN = {
    INSTALL,
    "reconnect-demo",
    SERVER,
    "twistd -ny examples/saystuff.tac",
    "twistd -ny saystuff.tac",
    "printf 'one\\ntwo\\n' | twistd -n saystuff --stdin",
}


def test_everyCommandIsKnown() -> None:
    """
    Every command in the documents is run (or checked) by a test here, and
    every command a test here runs is still in the documents.
    """
    assert ALL - CHECKED == RUN


def test_testCommandIsWhatCiRuns() -> None:
    """
    README's test command is the command of one of C{.ci/run}'s steps.
    """
    assert TESTS in commands(ROOT / "README.md")
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert [line for line in ci if line.rstrip().endswith(f'" {TESTS}')]


def test_slowTestsCommandIsWhatCiRuns() -> None:
    """
    README's command for the tests the default run leaves out is a step of
    C{.ci/run} too, and the default run does leave them out.
    """
    slow = "python -m pytest -m slow"
    assert f"`{slow}`" in (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert [line for line in ci if line.rstrip().endswith(f'" {slow}')]
    assert '-m "not slow"' in (ROOT / "setup.cfg").read_text()


def test_toxEnvironmentsExist() -> None:
    """
    Each C{tox -e NAME} in the documents names an environment of tox.ini,
    and plain C{tox} runs the tests (on every Python from 3.10), lint and
    typing.
    """
    toxIni = (ROOT / "tox.ini").read_text()
    for command in CHECKED:
        match = re.fullmatch(r"tox -e (\S+)", command)
        if match:
            assert f"[testenv:{match.group(1)}]" in toxIni
    envlist = re.search(r"^envlist = (.*)$", toxIni, re.MULTILINE)
    assert envlist is not None
    for env in ("py3{10,11,12,13}", "lint", "typing"):
        assert env in envlist.group(1)


def copyOfProject(target: Path) -> Path:
    shutil.copytree(
        ROOT,
        target,
        ignore=shutil.ignore_patterns(
            ".git",
            ".tox",
            ".venv",
            "*.egg-info",
            "build",
            "__pycache__",
            "dropin.cache",
        ),
    )
    return target


def activated() -> dict[str, str]:
    """
    The environment of a user who installed the project and activated its
    venv: this interpreter's scripts (twistd, reconnect-demo) come first.
    """
    scripts = str(Path(sys.executable).parent)
    return dict(os.environ, PATH=scripts + os.pathsep + os.environ.get("PATH", ""))


class Background:
    """
    C{script} run with bash in C{where}, in a session of its own so that it
    and everything it starts can be stopped together, its output read from
    a pipe as it comes.
    """

    def __init__(self, script: str, where: Path) -> None:
        self.process = subprocess.Popen(
            ["bash", "-c", script],
            cwd=where,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=activated(),
        )
        assert self.process.stdout is not None
        self._pipe = self.process.stdout
        os.set_blocking(self._pipe.fileno(), False)
        self.output = b""

    def _read(self, timeout: float) -> bool:
        """
        Read what has come within C{timeout} seconds; C{False} at the end
        of the output.
        """
        with selectors.DefaultSelector() as selector:
            selector.register(self._pipe, selectors.EVENT_READ)
            if not selector.select(timeout):
                return True
        chunk = self._pipe.read()
        if not chunk:
            return chunk is None
        self.output += chunk
        return True

    def waitFor(self, marker: bytes, detaches: bool) -> None:
        """
        Wait until C{marker} is in the output; unless the script C{detaches}
        (ends once it has put its work in the background), it must not end
        first.
        """
        deadline = time.monotonic() + 60
        while marker not in self.output:
            remaining = deadline - time.monotonic()
            assert remaining > 0, self.output.decode()
            ended = not self._read(remaining)
            assert not ended, self.output.decode()
            assert detaches or self.process.poll() is None, self.output.decode()

    def stopAll(self) -> None:
        """
        SIGTERM to the script and everything it started, as a user's ^C
        would; then the rest of the output.
        """
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)
        while self._read(5):
            pass


def guideTac() -> str:
    guide = ROOT / "docs" / "guide.md"
    [tac] = [b for b in blocks(guide, "python") if b.startswith("# saystuff.tac")]
    return tac


@DEFAULT_PORT
@pytest.mark.parametrize(
    "document, client, marker",
    [
        (ROOT / "README.md", "twistd -ny examples/saystuff.tac", b"reply: b'hello 2'"),
        (ROOT / "docs" / "guide.md", "twistd -ny saystuff.tac", b"Connected to"),
    ],
    ids=["README", "guide"],
)
def test_tacBesideTheServer(
    tmp_path: Path, document: Path, client: str, marker: bytes
) -> None:
    """
    The documents' pair of commands: the bundled server in the background,
    then a C{.tac} client (the example, or the guide's own) that talks to
    it, in one folder.
    """
    [block] = [b for b in blocks(document, "sh") if client in b]
    assert block.splitlines() == [SERVER, client]
    where = copyOfProject(tmp_path / "project")
    (where / "saystuff.tac").write_text(guideTac())
    background = Background(block, where)
    try:
        background.waitFor(marker, detaches=False)
    finally:
        background.stopAll()
    assert b"Another twistd server is running" not in background.output
    assert b"Traceback" not in background.output


@DEFAULT_PORT
def test_stdinCommand(tmp_path: Path) -> None:
    """
    The C{--stdin} command, with the server started as README starts it:
    both replies come back and the command ends.
    """
    [command] = [c for c in RUN if "--stdin" in c]
    server = Background(SERVER, tmp_path)
    try:
        server.waitFor(b"starting on 65432", detaches=True)
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
            env=activated(),
        )
    finally:
        server.stopAll()
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"one\ntwo\n"


@pytest.mark.slow
def test_installAndDemo(tmp_path: Path) -> None:
    """
    README's first two commands, as a new user runs them: install into a
    fresh venv in the project, then the demo, which needs nothing else
    running.
    """
    where = copyOfProject(tmp_path / "project")
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    script = f"{INSTALL} && reconnect-demo"
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "no line was lost." in done.stdout
