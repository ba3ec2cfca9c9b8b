"""
What the service needs to know about TLS: whether a transport negotiates
it, and whether a failure says the peer's certificate was not accepted.

Nothing here imports pyOpenSSL or service_identity unless they are already
loaded: a program that never uses TLS does not need them installed.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet.interfaces import ISSLTransport
from twisted.python.failure import Failure

# Words of OpenSSL's reasons that say a certificate, ours or the peer's,
# was refused: the peer's did not verify, or the peer refused ours.
_CERTIFICATE_REASONS = ("certificate", "unknown ca")


def tellsHandshakeTo(transport: object, protocol: object) -> bool:
    """
    Will C{transport}'s TLS layer tell C{protocol} when its handshake is
    done, so that a connection can wait for it?

    Both of Twisted's ways qualify: the memory-BIO layer that
    C{wrapClientTLS} and C{tls:} strings put around a connection, and a
    connection that runs TLS itself (C{SSL4ClientEndpoint}, whose layer is
    the transport, with the endpoint's own wrapper, which passes the news
    on, between it and the protocol); each tells the protocol it wraps.  A
    protocol wrapper of another kind between the TLS layer and C{protocol}
    does not pass the news on, so then there is nothing to wait for.  A
    transport that provides C{ISSLTransport} through a layer not of
    Twisted's making (a test's fake) is trusted to tell.
    """
    tls = sys.modules.get("twisted.protocols.tls")
    layerClass = None if tls is None else tls.TLSMemoryBIOProtocol
    if layerClass is not None and isinstance(transport, layerClass):
        return _passedOn(transport.wrappedProtocol) is protocol
    if not ISSLTransport.providedBy(transport):
        return False
    layer = getattr(transport, "protocol", None)
    if layerClass is not None and isinstance(layer, layerClass):
        return _passedOn(layer.wrappedProtocol) is protocol
    return not hasattr(transport, "wrappedProtocol")


def _passedOn(wrapped: object) -> object:
    """
    What the TLS layer's protocol passes the handshake on to: the protocol
    under Twisted's endpoint wrappers (C{SSL4ClientEndpoint} puts one
    between the layer and the factory's protocol), which pass it on to a
    protocol that listens for it, as the service's does.
    """
    endpoints = sys.modules.get("twisted.internet.endpoints")
    wrapperClass = getattr(endpoints, "_WrappingProtocol", None)
    while wrapperClass is not None and type(wrapped) is wrapperClass:
        wrapped = getattr(wrapped, "_wrappedProtocol", None)
    return wrapped


def isCertificateError(failure: Failure) -> bool:
    """
    Did an attempt fail because a certificate was not accepted?

    True for a peer certificate that does not verify against the trust
    roots (unknown issuer, expired, self-signed), for one issued to another
    host name, and for a peer that refused the client's certificate.  Such a
    failure stays until someone changes a certificate or the trust roots,
    so it can serve as C{isFatal}::

        ClientService(endpoint, factory, isFatal=isCertificateError)

    An L{AllEndpointsFailed} (a pass over several servers) is a
    certificate error when every server's failure is one.

    A TLS 1.2 server that requires a client certificate and gets none
    answers with OpenSSL's generic C{handshake failure} alert, the one it
    also sends for no shared cipher or protocol version: that is not told
    apart, and not a certificate error here.  Refused under TLS 1.3
    (C{certificate required}), or a client certificate from an authority
    the server does not trust (C{unknown ca}, C{bad certificate}), is one.

    @param failure: the failure of an attempt (a C{Failure}).
    @return: C{True} if the failure is a certificate's.
    """
    from ._pass import AllEndpointsFailed  # which imports the attempt, and so this

    if isinstance(failure.value, AllEndpointsFailed):
        failures = [f for _, f in failure.value.failures]
        return bool(failures) and all(isCertificateError(f) for f in failures)
    identity = sys.modules.get("service_identity")
    if identity is not None and failure.check(
        identity.VerificationError, identity.CertificateError
    ):
        return True
    ssl = sys.modules.get("OpenSSL.SSL")
    if ssl is None or not failure.check(ssl.Error):
        return False
    return any(
        word in reason.casefold()
        for reason in _openSSLReasons(failure.value)
        for word in _CERTIFICATE_REASONS
    )


def _openSSLReasons(error: Any) -> list[str]:
    """
    The reason strings of an C{OpenSSL.SSL.Error}, whose argument is a list
    of C{(library, function, reason)} tuples.
    """
    reasons = []
    for arg in getattr(error, "args", ()):
        if isinstance(arg, list):
            for entry in arg:
                if isinstance(entry, tuple) and entry:
                    reasons.append(str(entry[-1]))
    return reasons
