"""
The C{srv:} client endpoint string of the reconnect project: an
C{SRVEndpoint} over the servers a domain lists in DNS SRV records, as in
C{twistd saystuff --connect srv:saystuff:example.com}.

Only a lazy parser lives here: reconnect is imported when a C{srv:} string
is parsed, and no reactor is imported at all (the parser is handed one).
"""

from typing import Any

from twisted.internet.interfaces import IStreamClientEndpointStringParserWithReactor
from twisted.plugin import IPlugin
from zope.interface import implementer


@implementer(IPlugin, IStreamClientEndpointStringParserWithReactor)
class _SRVEndpointParser:
    """
    Parses C{srv:SERVICE:DOMAIN[:name=value...]} into an C{SRVEndpoint}.
    """

    prefix = "srv"

    def parseStreamClient(self, reactor: Any, *args: str, **kwargs: str) -> Any:
        from reconnect._srvparse import parseSRV

        return parseSRV(reactor, *args, **kwargs)


srvEndpointParser = _SRVEndpointParser()
