"""
The bundled pair over TLS: C{saystuff-server --tls-cert/--tls-key} serves
TLS, and the relay reaches it with a C{tls:} endpoint string, trusting the
server's issuer or, with other trust roots, failing each line with ERROR and
naming the certificate error in its log.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from certificates import Authority, Issued
from helpers import StdoutOnly, endedWithin, freePort, stop, twistd, until
from twisted.python.usage import UsageError

from reconnect.saystuff import _servertap as servertap


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority(tmp_path / "ca")


@pytest.fixture
def issued(authority: Authority) -> Issued:
    return authority.issue("localhost")


def test_serverTLSOptions(issued: Issued, tmp_path: Path) -> None:
    """
    The certificate and key are read when the options are parsed, from one
    PEM file or two.
    """
    options = servertap.Options()
    options.parseOptions(
        ["--tls-cert", str(issued.certificate), "--tls-key", str(issued.key)]
    )
    assert options["tls"] is not None
    both = tmp_path / "both.pem"
    both.write_bytes(issued.pem())
    options = servertap.Options()
    options.parseOptions(["--tls-cert", str(both)])
    assert options["tls"] is not None


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--tls-key", "{key}"], "--tls-key: needs --tls-cert"),
        (["--tls-cert", "{missing}"], "--tls-cert: cannot read"),
        (["--tls-cert", "{certificate}"], "--tls-cert: no certificate and matching"),
        (["--tls-cert", "{key}", "--tls-key", "{key}"], "--tls-key: no certificate"),
    ],
)
def test_badServerTLSOptions(
    issued: Issued, tmp_path: Path, argv: list[str], says: str
) -> None:
    """
    A TLS option that names no file, or files without a certificate and its
    key, is a usage error naming the option.
    """
    paths = {
        "key": str(issued.key),
        "certificate": str(issued.certificate),
        "missing": str(tmp_path / "missing.pem"),
    }
    with pytest.raises(UsageError) as raised:
        servertap.Options().parseOptions([a.format(**paths) for a in argv])
    assert str(raised.value).startswith(says)


async def relayLines(
    where: Path, port: int, roots: Path, lines: bytes, *extra: str
) -> tuple[int, StdoutOnly]:
    connect = (
        f"tls:localhost:{port}:endpoint=tcp\\:127.0.0.1\\:{port}:trustRoots={roots}"
    )
    relay = twistd(
        where,
        "saystuff",
        "--connect",
        connect,
        *extra,
        "--stdin",
        protocol=StdoutOnly(),
    )
    assert isinstance(relay, StdoutOnly)
    relay.transport.write(lines)  # type: ignore[union-attr]
    relay.transport.closeStdin()  # type: ignore[union-attr]
    return await endedWithin(relay, 60), relay


@pytest_twisted.ensureDeferred
async def test_relayOverTLS(
    tmp_path: Path, authority: Authority, issued: Issued
) -> None:
    """
    The relay reaches the bundled server over TLS; with trust roots that do
    not hold the server's issuer, each line is answered ERROR once its
    deadline passes and the relay's log says why.
    """
    port = freePort()
    server = twistd(
        tmp_path,
        "saystuff-server",
        "--port",
        str(port),
        "--tls-cert",
        str(issued.certificate),
        "--tls-key",
        str(issued.key),
    )
    try:
        await until(lambda: b"starting on" in server.output)
        code, relay = await relayLines(tmp_path, port, authority.roots, b"one\ntwo\n")
        assert code == 0, relay.stderr.decode()
        assert relay.stdout.splitlines() == [b"one", b"two"]

        stranger = Authority(tmp_path / "stranger", "a stranger's CA")
        code, relay = await relayLines(
            tmp_path, port, stranger.roots, b"three\n", "--timeout", "2"
        )
        assert code == 1
        assert relay.stdout.startswith(b"ERROR RequestTimedOut")
        assert b"certificate verify failed" in relay.stderr
        assert b"Traceback" not in relay.stderr
    finally:
        await stop(server)
