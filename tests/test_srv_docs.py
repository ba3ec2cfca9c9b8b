"""
The SRV sections of README.md and docs/guide.md, run as written: their
Python snippets, and the C{twistd saystuff --connect srv:...} command
against a DNS server on 127.0.0.1 that answers as the command expects.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
import pytest_twisted
from helpers import ROOT, StdoutOnly
from test_srv_loopback import DNSOnLoopback
from twisted.internet import reactor
from twisted.internet.error import CannotListenError

from reconnect import ClientService, SRVEndpoint
from reconnect.saystuff import RestartableLineServer

DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "guide.md"]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def srvBlocks(language: str) -> list[tuple[Path, str]]:
    return [
        (path, body)
        for path in DOCUMENTS
        for lang, body in FENCE.findall(path.read_text())
        if lang == language and ("SRV" in body or "srv:" in body)
    ]


@pytest.mark.parametrize(
    "document, snippet", srvBlocks("python"), ids=lambda x: getattr(x, "name", "")
)
def test_snippetRuns(document: Path, snippet: str) -> None:
    """
    Each snippet makes a L{ClientService} over an L{SRVEndpoint} (nothing
    is started, so no lookup is made).
    """
    namespace: dict[str, object] = {}
    exec(compile(snippet, str(document), "exec"), namespace)
    assert isinstance(namespace["endpoint"], SRVEndpoint)
    assert isinstance(namespace["service"], ClientService)


def test_bothDocumentsHaveASnippet() -> None:
    assert {path.name for path, _ in srvBlocks("python")} == {"README.md", "guide.md"}


@pytest_twisted.ensureDeferred
async def test_twistdCommand(tmp_path: Path) -> None:
    """
    README's C{srv:} command, with a DNS server where it says (on another
    port if that one is taken) that lists a line server for
    C{_saystuff._tcp.service.consul}: both lines come back.
    """
    [(_, command)] = srvBlocks("shell")
    command = command.strip()
    port = int(re.search(r"nameserverPort=(\d+)", command).group(1))  # type: ignore[union-attr]
    try:
        dns = DNSOnLoopback(port)
    except CannotListenError:
        dns = DNSOnLoopback()
        command = command.replace(
            f"nameserverPort={port}", f"nameserverPort={dns.port}"
        )
    server = RestartableLineServer(reactor)
    linePort = await server.start()
    dns.zone.serve(("127.0.0.1", linePort, 0, 0), name=b"_saystuff._tcp.service.consul")
    process = StdoutOnly()
    binaries = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=binaries + os.pathsep + os.environ.get("PATH", ""))
    env["PYTHONPATH"] = str(ROOT)
    try:
        reactor.spawnProcess(
            process, "/bin/sh", ["/bin/sh", "-c", command], env=env, path=str(tmp_path)
        )
        code = await process.ended
        assert code == 0, process.stderr.decode()
        assert process.stdout == b"one\ntwo\n"
        assert dns.zone.queries >= 1
    finally:
        await server.kill()
        await dns.stop()
