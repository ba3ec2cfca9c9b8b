"""
The public API: C{reconnect.__all__} names each public object once, and each
is the object from the private module that defines it.
"""

import importlib

import pytest

import reconnect
import reconnect.saystuff

EXPORTS = {
    "reconnect": {
        "AllEndpointsFailed": "reconnect._pass",
        "AttemptTimedOut": "reconnect._errors",
        "ClientService": "reconnect._service",
        "ConnectionStats": "reconnect._stats",
        "EndpointConnector": "reconnect._legacy",
        "EndpointHealth": "reconnect._pass",
        "FailoverEndpoint": "reconnect._failover",
        "GaveUpConnecting": "reconnect._errors",
        "IEndpointSession": "reconnect._sessions",
        "ISessionEndpoint": "reconnect._sessions",
        "ReconnectingClientFactory": "reconnect._legacy",
        "RetryPolicy": "reconnect._backoff",
        "TCPKeepAlive": "reconnect._keepalive",
        "backoffPolicy": "reconnect._backoff",
        "decorrelatedJitterPolicy": "reconnect._backoff",
        "fullJitterPolicy": "reconnect._backoff",
        "limitRetries": "reconnect._backoff",
    },
    "reconnect.saystuff": {
        "MaybeDelivered": "reconnect.saystuff._errors",
        "ResendBudget": "reconnect.saystuff._budget",
        "ResendBudgetExhausted": "reconnect.saystuff._errors",
    },
}


@pytest.mark.parametrize("package", [reconnect, reconnect.saystuff])
def test_allHasNoDuplicates(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(package, name), name


@pytest.mark.parametrize(
    "package, name, module",
    [(p, n, m) for p, names in EXPORTS.items() for n, m in names.items()],
)
def test_exportIsThePrivateObject(package: str, name: str, module: str) -> None:
    public = importlib.import_module(package)
    assert name in public.__all__
    assert getattr(public, name) is getattr(importlib.import_module(module), name)


def test_designNamesImport() -> None:
    """
    The names the design fixes import as written there.
    """
    from reconnect import (  # noqa: F401
        ClientService,
        EndpointConnector,
        ReconnectingClientFactory,
        backoffPolicy,
    )
    from reconnect.saystuff import (  # noqa: F401
        MaybeDelivered,
        NotConnectedError,
        SayStuffToServerService,
    )
