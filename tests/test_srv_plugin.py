"""
The C{srv:} client endpoint string: found by Twisted's C{clientFromString}
through the dropin, its options and their errors, TLS checked against the
domain, and C{twistd saystuff --connect srv:...} end to end.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from helpers import ROOT, StdoutOnly, twistd
from test_srv_loopback import DNSOnLoopback, dnsFixture  # noqa: F401
from twisted.internet import reactor
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import clientFromString
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactor
from twisted.python.usage import UsageError

from reconnect import SRVEndpoint
from reconnect.saystuff import RestartableLineServer
from reconnect.saystuff import _tap as tap
from reconnect.saystuff._options import _NO_REACTOR
from reconnect.saystuff._server import EchoLineFactory


def test_dropinFoundAndLazy() -> None:
    """
    Twisted finds the C{srv} parser in the dropin, and importing the dropin
    imports neither reconnect nor a reactor.
    """
    code = (
        "import sys\n"
        "from twisted.plugin import getPlugins\n"
        "from twisted.internet.interfaces import "
        "IStreamClientEndpointStringParserWithReactor as I\n"
        "prefixes = {p.prefix for p in getPlugins(I)}\n"
        "assert 'srv' in prefixes, prefixes\n"
        "assert 'twisted.internet.reactor' not in sys.modules\n"
        "assert 'reconnect' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_positionalAndNamed() -> None:
    memory = MemoryReactor()
    endpoint = clientFromString(memory, "srv:saystuff:example.test")
    assert isinstance(endpoint, SRVEndpoint)
    assert endpoint.name == b"_saystuff._tcp.example.test"
    named = clientFromString(
        memory,
        "srv:service=xmpp-server:domain=example.test:protocol=tcp:defaultPort=5269",
    )
    assert isinstance(named, SRVEndpoint)
    assert named.name == b"_xmpp-server._tcp.example.test"
    assert named._defaultPort == 5269
    assert named._tlsOptions is None


def test_tlsOptions(tmp_path: Path) -> None:
    cert, _ = _certificate(tmp_path, "example.test")
    endpoint = clientFromString(
        MemoryReactor(), f"srv:saystuff:example.test:tls=yes:trustRoots={cert}"
    )
    assert isinstance(endpoint, SRVEndpoint)
    assert endpoint._tlsOptions is not None
    assert endpoint._describeServer("a.test", 7) == "tls:a.test:7"


def test_tlsWithoutTLSSupportSaysWhatToInstall(monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "OpenSSL", None)
    monkeypatch.setitem(sys.modules, "OpenSSL.crypto", None)
    monkeypatch.delitem(sys.modules, "twisted.internet.ssl", raising=False)
    with pytest.raises(ValueError, match=r"reconnect\[tls\]"):
        clientFromString(MemoryReactor(), "srv:saystuff:example.test:tls=yes")


@pytest.mark.parametrize(
    "description, match",
    [
        ("srv:saystuff", "needs a domain"),
        ("srv:", "needs a service and a domain"),
        ("srv:a:b:c", "SERVICE:DOMAIN"),
        ("srv:saystuff:example.test:port=7", "does not take port"),
        ("srv:saystuff:example.test:defaultPort=http", "port number"),
        ("srv:saystuff:example.test:defaultPort=0", "between 1 and 65535"),
        ("srv:saystuff:example.test:stagger=-1", "finite number"),
        ("srv:saystuff:example.test:stagger=soon", "seconds"),
        ("srv:saystuff:example.test:tls=maybe", "yes or no"),
        ("srv:saystuff:example.test:trustRoots=/x", "need tls=yes"),
        ("srv:saystuff:example.test:tls=yes:trustRoots=/nowhere", "not a PEM"),
        ("srv:saystuff:example.test:nameserverPort=53", "needs nameserver="),
        ("srv:saystuff:example.test:nameserver=", "must be an address"),
        ("srv:saystuff:example.test:nameserver=not-an-ip", "must be an address"),
        ("srv:saystuff:example.test:nameserver=::1", r"escaped: nameserver=\\:"),
        ("srv:saystuff:example.test:tls=yes:tlsHostname=", "tlsHostname= must name"),
        ("srv:saystuff:example.test:tls=yes:tlsHostname=a..b", "not a host name"),
        ("srv:saystuff:example..test", "srv: domain 'example..test' is not a"),
        ("srv:saystuff:example.test:protocol=_tcp", "srv: protocol must be"),
        ("srv:_saystuff:example.test", "underscore"),
        ("srv:saystuff:.", "domain"),
    ],
)
def test_badDescriptions(description: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        clientFromString(MemoryReactor(), description)


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_nameserverAddress(address: str) -> None:
    """
    C{nameserver=} takes an IPv4 or an IPv6 address, the latter with its
    colons escaped, and the resolver asks it.
    """
    escaped = address.replace(":", "\\:")
    endpoint = clientFromString(
        MemoryReactor(), f"srv:saystuff:example.test:nameserver={escaped}"
    )
    assert isinstance(endpoint, SRVEndpoint)
    assert endpoint._lookup._resolver.servers == [(address, 53)]  # type: ignore[attr-defined]


def test_saystuffConnectOption() -> None:
    """
    C{twistd saystuff --connect srv:...} is accepted while options are
    checked (on no reactor); a bad one is a usage message.
    """
    options = tap.Options()
    options.parseOptions(["--connect", "srv:saystuff:example.test:defaultPort=7"])
    assert options["connect"] == ["srv:saystuff:example.test:defaultPort=7"]
    with pytest.raises(UsageError, match="defaultPort"):
        tap.Options().parseOptions(
            ["--connect", "srv:saystuff:example.test:defaultPort=x"]
        )
    assert isinstance(clientFromString(_NO_REACTOR, "srv:a:b.test"), SRVEndpoint)


def _certificate(where: Path, hostname: str) -> tuple[Path, Path]:
    """
    A self-signed certificate for C{hostname} and its key, as PEM files.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    certPath, keyPath = where / f"{hostname}.pem", where / f"{hostname}.key"
    certPath.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyPath.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certPath, keyPath


@pytest_twisted.ensureDeferred
async def test_tlsCheckedAgainstTheDomain(dns: DNSOnLoopback, tmp_path: Path) -> None:
    """
    With C{tls=yes}, the server's certificate must be valid for the domain
    (not for the target host, which unsigned records could name at will):
    one for the domain connects; one for another name, though issued by a
    trusted authority, fails the handshake.
    """
    from service_identity import VerificationError
    from twisted.internet import ssl

    good, goodKey = _certificate(tmp_path, "fleet.test")
    bad, badKey = _certificate(tmp_path, "elsewhere.test")
    listening = []
    for cert, key in ((good, goodKey), (bad, badKey)):
        pem = key.read_bytes() + cert.read_bytes()
        options = ssl.PrivateCertificate.loadPEM(pem).options()
        listening.append(
            reactor.listenSSL(0, EchoLineFactory(), options, interface="127.0.0.1")
        )
    goodPort, badPort = (p.getHost().port for p in listening)
    try:
        dns.zone.serve(("127.0.0.1", goodPort, 0, 0))
        endpoint = clientFromString(
            reactor,
            f"srv:saystuff:fleet.test:tls=yes:trustRoots={tmp_path}"
            f":nameserver=127.0.0.1:nameserverPort={dns.port}",
        )
        protocol = await endpoint.connect(Factory.forProtocol(_Hello))
        assert await protocol.answered == b"hello\r\n"
        protocol.transport.loseConnection()
        dns.zone.serve(("127.0.0.1", badPort, 0, 0))
        protocol = await endpoint.connect(Factory.forProtocol(_Hello))
        # The hostname check fails the handshake (Twisted 24.7 aborts just
        # after it); either way, the server never sees the line.
        with pytest.raises((VerificationError, ConnectionLost)):
            await protocol.answered
    finally:
        for port in listening:
            await maybeDeferred(port.stopListening)


class _Hello(Protocol):
    """
    Says hello once connected (TLS holds it until the handshake is done);
    C{answered} fires with the first bytes back, or fails with the reason
    the connection ended before any came.
    """

    def __init__(self) -> None:
        self.answered: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(b"hello\r\n")

    def dataReceived(self, data: bytes) -> None:
        if not self.answered.called:
            self.answered.callback(data)

    def connectionLost(self, reason: Any) -> None:
        if not self.answered.called:
            self.answered.errback(reason)


@pytest_twisted.ensureDeferred
async def test_twistdSaystuffOverSRV(dns: DNSOnLoopback, tmp_path: Path) -> None:
    """
    C{twistd -n saystuff --stdin --connect srv:...}: the relay looks the
    servers up in the test's DNS server and its lines are answered.
    """
    server = RestartableLineServer(reactor)
    port = await server.start()
    dns.zone.serve(("127.0.0.1", port, 0, 0))
    try:
        relay = twistd(
            tmp_path,
            "saystuff",
            "--connect",
            f"srv:saystuff:fleet.test:nameserver=127.0.0.1:nameserverPort={dns.port}",
            "--stdin",
            protocol=StdoutOnly(),
        )
        assert isinstance(relay, StdoutOnly)
        relay.transport.write(b"one\ntwo\n")  # type: ignore[union-attr]
        relay.transport.closeStdin()  # type: ignore[union-attr]
        code = await relay.ended
        assert code == 0, relay.stderr.decode()
        assert relay.stdout == b"one\ntwo\n"
        assert dns.zone.queries >= 1
    finally:
        await server.kill()
