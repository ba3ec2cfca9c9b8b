"""
The bundled line server's protocol, driven by hand (tests/test_relay_abuse.py
runs C{twistd saystuff-server} under hostile clients).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.testing import StringTransport

from reconnect.saystuff._server import EchoLineFactory, EchoLineProtocol


def echo() -> tuple[EchoLineProtocol, StringTransport]:
    protocol = EchoLineFactory().buildProtocol(None)
    assert isinstance(protocol, EchoLineProtocol)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


class Seeing(EchoLineProtocol):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[bytes] = []

    def lineReceived(self, line: bytes) -> None:
        self.seen.append(line)
        super().lineReceived(line)


lines = st.lists(st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"")))


@given(lines, st.lists(st.integers(0, 400), max_size=6))
def test_echoesEveryLineHoweverItArrives(sent: list[bytes], cuts: list[int]) -> None:
    """
    Every CRLF-terminated line comes back as it was, however the bytes
    are cut; a subclass's C{lineReceived} sees each line.
    """
    data = b"".join(line + b"\r\n" for line in sent)
    at = sorted(min(cut, len(data)) for cut in cuts)
    pieces = [data[a:b] for a, b in zip([0, *at], [*at, len(data)], strict=True)]
    protocol, transport = echo()
    seeing = Seeing()
    seeingTransport = StringTransport()
    seeing.makeConnection(seeingTransport)
    for piece in pieces:
        protocol.dataReceived(piece)
        seeing.dataReceived(piece)
    assert transport.value() == data
    assert seeingTransport.value() == data
    assert seeing.seen == sent


def test_overLongLineClosesAfterTheLinesBefore() -> None:
    """
    A line over C{MAX_LENGTH} closes the connection; the lines before it
    are answered first.
    """
    protocol, transport = echo()
    protocol.dataReceived(b"a\r\n" + b"x" * 16385 + b"\r\nb\r\n")
    assert transport.value() == b"a\r\n"
    assert transport.disconnecting
    protocol, transport = echo()
    protocol.dataReceived(b"a\r\n" + b"x" * 20000)
    assert transport.value() == b"a\r\n"
    assert transport.disconnecting


def test_clientThatDoesNotReadIsNotReadFrom() -> None:
    """
    The protocol is its transport's producer: when the answers back up it
    stops reading from the client, and reads again once they drain.
    """
    protocol, transport = echo()
    assert transport.producer is protocol
    protocol.pauseProducing()
    assert transport.producerState == "paused"
    protocol.resumeProducing()
    assert transport.producerState == "producing"


def test_halfCloseIsAnsweredThenClosed() -> None:
    """
    A client that half-closes after sending gets its answers, then the
    connection closes.
    """
    protocol, transport = echo()
    protocol.dataReceived(b"one\r\ntwo\r\n")
    protocol.readConnectionLost()
    assert transport.value() == b"one\r\ntwo\r\n"
    assert transport.disconnecting
    assert transport.producer is None
