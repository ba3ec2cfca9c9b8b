"""
Bad arguments a new user gave, each refused at the call with an error that
names the argument (and, for an endpoint description, the description and
why), rather than accepted and failing later, or for ever.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.endpoints import TCP4ClientEndpoint, clientFromString
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.python.usage import UsageError

from reconnect import (
    ClientService,
    EndpointConnector,
    FailoverEndpoint,
    ReconnectingClientFactory,
    SRVEndpoint,
)
from reconnect._describe import describeEndpoint
from reconnect.saystuff import SayStuffToServerService
from reconnect.saystuff import _tap as tap
from reconnect.testing import FakeEndpoint

ROOT = Path(__file__).parent.parent


# 1. EndpointConnector checks its arguments.


def test_connectorTakesADescription() -> None:
    """
    A description is parsed, through the reactor given, as
    L{ClientService} parses one.
    """
    reactor = MemoryReactorClock()
    connector = EndpointConnector(
        "tcp:127.0.0.1:65432", ReconnectingClientFactory(), reactor
    )
    assert isinstance(connector.endpoint, TCP4ClientEndpoint)
    connector.connect()
    [(host, port, *_)] = reactor.tcpClients
    assert (host, port) == ("127.0.0.1", 65432)


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((42, Factory(), None), TypeError, "^endpoint must be"),
        (("nope:1", Factory(), None), ValueError, "^endpoint 'nope:1' is not"),
        ((FakeEndpoint(), None, None), TypeError, "^factory must be"),
        ((FakeEndpoint(), Factory, None), TypeError, "^factory must be .*instance"),
        ((FakeEndpoint(), Factory(), "reactor"), TypeError, "^reactor must be"),
    ],
)
def test_connectorBadArguments(
    args: tuple[Any, Any, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        EndpointConnector(*args)


# 2 and 6. One report of a bad description, wherever it is given.


BAD = [
    ("nope:1", "Unknown endpoint type: 'nope'"),
    ("tcp:host=a", "port"),
    ("tls:localhost:65450:trustRoots=/nonexistent", "'/nonexistent' could not be read"),
]


@pytest.mark.parametrize("description, reason", BAD)
@pytest.mark.parametrize(
    "make, name",
    [
        (lambda d: ClientService(d, Factory(), clock=Clock()), "endpoint"),
        (lambda d: FailoverEndpoint(["tcp:a:1", d], reactor=Clock()), "endpoints[1]"),
        (lambda d: SayStuffToServerService(endpoint=d), "endpoint"),
        (
            lambda d: EndpointConnector(d, Factory(), MemoryReactorClock()),
            "endpoint",
        ),
    ],
)
def test_badDescription(
    make: Callable[[str], object], name: str, description: str, reason: str
) -> None:
    """
    A bad description is a C{ValueError} naming the argument, the
    description and why: never an empty reason, nor Twisted's C{TypeError}.
    """
    with pytest.raises(ValueError) as caught:
        make(description)
    message = str(caught.value)
    assert message.startswith(
        f"{name} {description!r} is not a client endpoint description: "
    )
    assert reason in message
    assert not message.endswith(": ")


@pytest.mark.parametrize("description, reason", BAD)
def test_badConnectOption(description: str, reason: str) -> None:
    """
    The relay's C{--connect} reports a bad description the same way.
    """
    with pytest.raises(UsageError) as caught:
        tap.Options().parseOptions(["--connect", description])
    message = str(caught.value)
    assert message.startswith(f"--connect {description!r} is not a client endpoint")
    assert reason in message


# 4. A factory class is not a factory.


def test_serviceRefusesAFactoryClass() -> None:
    with pytest.raises(TypeError, match=r"factory .*instance.*pass Factory\(\)"):
        ClientService(FakeEndpoint(), Factory, clock=Clock())


# 5. SRVEndpoint checks every argument.


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((None, "x", "example.test"), {}, TypeError, "^reactor must be"),
        (("reactor", "x", "example.test"), {}, TypeError, "^reactor must be"),
        ((Clock(), "x", "example.test"), {"clock": 1}, TypeError, "^clock must be"),
        ((Clock(), "x", "a.test"), {"tlsOptions": "yes"}, TypeError, "^tlsOptions"),
        ((Clock(), "x", "a.test"), {"protocol": "tc p"}, ValueError, "^protocol"),
        ((Clock(), "x", "a.test"), {"protocol": "-tcp"}, ValueError, "^protocol"),
        ((Clock(), "x/y", "a.test"), {}, ValueError, "^service"),
    ],
)
def test_srvBadArguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        SRVEndpoint(*args, **kwargs)


def test_srvProtocolLabels() -> None:
    """
    Any label of letters, digits and hyphens names the records, as
    documented; TLS options made by Twisted are taken.
    """
    from twisted.internet.ssl import optionsForClientTLS

    endpoint = SRVEndpoint(
        Clock(),
        "x",
        "a.test",
        protocol="sctp",
        tlsOptions=optionsForClientTLS("a.test"),
    )
    assert endpoint.name == b"_x._sctp.a.test"


# 7. One rule per option.


@pytest.mark.parametrize(
    "option, values, rule",
    [
        ("--heartbeat", ["0", "-3", "inf", "nan"], "must be a finite number > 0"),
        ("--failback", ["0", "-3", "inf"], "must be a finite number > 0"),
        ("--factor", ["0.5", "0", "-1", "inf"], "must be a finite number >= 1"),
    ],
)
def test_oneRulePerOption(option: str, values: list[str], rule: str) -> None:
    extra = ["--connect", "tcp:a:1", "--connect", "tcp:b:1"]
    for value in values:
        with pytest.raises(UsageError) as caught:
            tap.Options().parseOptions([*extra, option, value])
        assert str(caught.value).endswith(f"{option}: {rule}, not {value}")


@pytest.mark.parametrize("size", [0, -1])
def test_queueSizeOneRule(size: int) -> None:
    with pytest.raises(ValueError, match=rf"^queueSize must be >= 1, not {size} "):
        SayStuffToServerService("localhost", 1, queueSize=size)


# 8. The tac's comment runs what README runs.


def test_tacCommentMatchesReadme() -> None:
    header = (ROOT / "examples" / "saystuff.tac").read_text().split("\n\n")[0]
    commented = [
        line[1:].split("#")[0].strip()
        for line in header.splitlines()
        if line.startswith("#   twistd")
    ]
    readme = (ROOT / "README.md").read_text()
    block = re.search(
        r"```sh\n(twistd -n --pidfile= saystuff-server &\n.*?)```", readme, re.S
    )
    assert block is not None
    assert commented == block.group(1).strip().splitlines()


# 9. A tls: endpoint is named as one.


def test_tlsDescribed() -> None:
    pytest.importorskip("OpenSSL")
    endpoint = clientFromString(MemoryReactorClock(), "tls:localhost:65450")
    assert describeEndpoint(endpoint) == "tls:localhost:65450"


def test_emptyReasonNamesTheType() -> None:
    """
    A parser's exception with no text is reported by its type.
    """
    from reconnect._describe import parseFailure

    class Unexplained(Exception):
        pass

    assert parseFailure(Unexplained()) == "Unexplained"
    assert parseFailure(ValueError("bad port")) == "bad port"
