"""
Twisted's own test suites for C{ClientService}, C{backoffPolicy} and
C{ReconnectingClientFactory}, run unchanged against ours.

Each suite is loaded from the installed Twisted's source into a module of
its own, and the names it tests are pointed at reconnect's classes: that is
the whole rewrite.  Its test cases are then collected here like our own.
"""

from __future__ import annotations

import importlib.util
import types

import reconnect


def _againstReconnect(moduleName: str, **replacements: object) -> types.ModuleType:
    """
    Load Twisted's test module C{moduleName} afresh, with the names in
    C{replacements} bound to ours.
    """
    spec = importlib.util.find_spec(moduleName)
    assert spec is not None and spec.origin is not None, moduleName
    with open(spec.origin, encoding="utf-8") as source:
        code = compile(source.read(), spec.origin, "exec")
    module = types.ModuleType(moduleName + "_againstReconnect")
    module.__file__ = spec.origin
    exec(code, module.__dict__)
    for name, ours in replacements.items():
        assert name in module.__dict__, f"{moduleName} no longer uses {name}"
        module.__dict__[name] = ours
    return module


_internet = _againstReconnect(
    "twisted.application.test.test_internet", ClientService=reconnect.ClientService
)
_application = _againstReconnect(
    "twisted.test.test_application", backoffPolicy=reconnect.backoffPolicy
)
_factories = _againstReconnect(
    "twisted.test.test_factories",
    ReconnectingClientFactory=reconnect.ReconnectingClientFactory,
)

TwistedClientServiceTests = _internet.ClientServiceTests
TwistedBackoffPolicyTests = _application.BackoffPolicyTests
TwistedReconnectingFactoryTests = _factories.ReconnectingFactoryTests
