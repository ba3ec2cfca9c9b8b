"""
twistd plugins of the reconnect project: C{saystuff} (a reconnecting line
relay) and C{saystuff-server} (the bundled line server).

Only lazy service makers live here, so that C{twistd --help} imports nothing
of reconnect's, and no reactor, until a plugin is chosen.
"""

from twisted.application.service import ServiceMaker

saystuff = ServiceMaker(
    "reconnect saystuff",
    "reconnect.saystuff._tap",
    "Relay lines to a line server over one connection that stays up.",
    "saystuff",
)

saystuffServer = ServiceMaker(
    "reconnect saystuff-server",
    "reconnect.saystuff._servertap",
    "A line server that answers every line with the same line.",
    "saystuff-server",
)
