"""
Certificates made at test time: a certificate authority, and server
certificates it issues, written as PEM files for servers and trust roots.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Issued:
    """
    A certificate and its key, as PEM files.
    """

    certificate: Path
    key: Path

    def pem(self) -> bytes:
        """
        The certificate and key in one PEM, as Twisted's
        C{PrivateCertificate.loadPEM} and C{ssl:} strings take them.
        """
        return self.certificate.read_bytes() + self.key.read_bytes()


class Authority:
    """
    A certificate authority of our own, whose certificate lives in a folder
    of its own, usable as C{trustRoots} in a C{tls:} endpoint string.
    """

    def __init__(self, directory: Path, name: str = "reconnect test CA") -> None:
        self.directory = directory
        self.roots = directory / "roots"
        self.roots.mkdir(parents=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self._name = subject
        self.certificate = (
            _builder(subject, subject, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(self._key, hashes.SHA256())
        )
        self.rootFile = self.roots / "ca.pem"
        self.rootFile.write_bytes(
            self.certificate.public_bytes(serialization.Encoding.PEM)
        )

    def issue(
        self, hostname: str = "localhost", addresses: tuple[str, ...] = ("127.0.0.1",)
    ) -> Issued:
        """
        A server certificate for C{hostname} (and the IP C{addresses}),
        signed by this authority.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
        names: list[x509.GeneralName] = [x509.DNSName(hostname)]
        names += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
        certificate = (
            _builder(subject, self._name, key.public_key())
            .add_extension(x509.SubjectAlternativeName(names), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .sign(self._key, hashes.SHA256())
        )
        base = self.directory / hostname
        issued = Issued(base.with_suffix(".crt"), base.with_suffix(".key"))
        issued.certificate.write_bytes(
            certificate.public_bytes(serialization.Encoding.PEM)
        )
        issued.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        return issued


def _builder(
    subject: x509.Name, issuer: x509.Name, publicKey: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(publicKey)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
    )
