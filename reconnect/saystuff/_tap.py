"""
C{twistd saystuff}: relay lines to a line server over one connection that
stays up.
"""

from __future__ import annotations

from typing import Any, Optional, Union

from twisted.application.service import IService, MultiService
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.python.usage import UsageError

from .._backoff import backoffPolicy
from .._debugevents import setDebugEvents
from .._failover import FailoverEndpoint
from ._options import (
    DEFAULT_PORT,
    ExitingOptions,
    checkClientEndpoint,
    checkServerEndpoint,
    factorFloat,
    listening,
    named,
    nonNegativeFloat,
    oneLineHelp,
    portNumber,
    positiveFloat,
    positiveInt,
)
from ._relay import (
    DEFAULT_CLIENT_IDLE_TIMEOUT,
    DEFAULT_MAX_CLIENTS,
    DESCRIPTOR_RESERVE,
    RelayClients,
    StdinRelayService,
)
from ._service import SayStuffToServerService

DEFAULT_LISTEN = "tcp:8765:interface=127.0.0.1"
DEFAULT_HOST = "127.0.0.1"
TWISTD_PIDFILE = "twistd.pid"
STDIN_TIMEOUT = 30.0
"""
Seconds C{--stdin} waits for each reply unless C{--timeout} says otherwise:
a pipe must end, even against a server that accepts and never answers.
"""


class Options(ExitingOptions):
    # README's synopsis is this one, wrapped (tests/test_plugins.py).
    synopsis = (
        f"[--host {DEFAULT_HOST}] [--port {DEFAULT_PORT}] "
        "[--connect ENDPOINT ...] [--shuffle] [--failback SECONDS] "
        "[--listen ENDPOINT ...] [--stdin] "
        "[--max-clients 1000] [--client-timeout 300] "
        "[--initial-delay 1.0] [--max-delay 60] [--factor 1.5] "
        "[--queue-size 1000] [--timeout SECONDS] "
        "[--heartbeat SECONDS] [--heartbeat-line PING] "
        "[--metrics ENDPOINT] [--debug-events]"
    )
    longdesc = (
        "Keep one connection to a line server up and relay lines to it: from "
        "local clients (--listen, repeatable) or from standard input (--stdin; "
        "replies go to standard output and, unless told otherwise, twistd's log "
        "to standard error).  Each reply goes back to whoever sent the line.  "
        f"With neither --listen nor --stdin, it listens on {DEFAULT_LISTEN}."
    )

    optParameters = [
        ["host", None, None, "The server's host name or address [127.0.0.1]."],
        [
            "port",
            "p",
            None,
            f"The server's port [{DEFAULT_PORT}].",
            named("port", portNumber),
        ],
        [
            "initial-delay",
            None,
            1.0,
            "Seconds before the first retry.",
            named("initial-delay", nonNegativeFloat),
        ],
        [
            "max-delay",
            None,
            60.0,
            "Cap on the growing wait between retries; up to 1 s of random "
            "jitter comes on top.",
            named("max-delay", nonNegativeFloat),
        ],
        [
            "factor",
            None,
            1.5,
            "How much the wait grows per failure (at least 1).",
            named("factor", factorFloat),
        ],
        [
            "failback",
            None,
            None,
            "With several --connect: while connected through another, try the "
            "first every SECONDS and move back to it once it answers.",
            named("failback", positiveFloat),
        ],
        [
            "queue-size",
            None,
            1000,
            "Lines held while disconnected.",
            named("queue-size", positiveInt),
        ],
        [
            "timeout",
            None,
            None,
            "Seconds to wait for each reply; 0: no limit (default: "
            f"{STDIN_TIMEOUT:g} with --stdin, else no limit).",
            named("timeout", nonNegativeFloat),
        ],
        [
            "heartbeat",
            None,
            None,
            "Send a heartbeat line after SECONDS idle; no reply in as long "
            "again: reconnect (default: no heartbeats).",
            named("heartbeat", positiveFloat),
        ],
        [
            "heartbeat-line",
            None,
            "PING",
            "The heartbeat line; the server must answer it with one line.",
        ],
        [
            "max-clients",
            None,
            DEFAULT_MAX_CLIENTS,
            "Local clients connected at once, over every --listen; more are "
            "closed as they connect. Lowered, with a warning, to leave "
            f"{DESCRIPTOR_RESERVE} of the process's file descriptors free "
            "(and as many as --metrics may use).",
            named("max-clients", positiveInt),
        ],
        [
            "client-timeout",
            None,
            DEFAULT_CLIENT_IDLE_TIMEOUT,
            "Close a local client that has sent nothing for SECONDS and is "
            "owed no answer, or that has read none of its answers for SECONDS "
            "(0: never).",
            named("client-timeout", nonNegativeFloat),
        ],
    ]
    optFlags = [
        ["stdin", None, "Relay standard input, replies to standard output."],
        [
            "shuffle",
            None,
            "With several --connect: try them in an order of this client's "
            "own, so that many clients spread over the servers.",
        ],
        [
            "debug-events",
            None,
            "Log reconnect's debug events too (each attempt, stop and restart).",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["connect"] = []
        self["metrics"] = None

    @oneLineHelp
    def opt_connect(self, description: str) -> None:
        """
        A client endpoint description to use instead of --host and --port
        (e.g. tcp:host=example.com:port=7 or unix:path=/tmp/s).  Repeatable,
        most preferred first: the relay then fails over between them.
        """
        checkClientEndpoint("connect", description)
        self["connect"].append(description)

    opt_c = opt_connect

    @oneLineHelp
    def opt_listen(self, description: str) -> None:
        """
        A server endpoint where local clients connect and send lines
        (repeatable).
        """
        checkServerEndpoint("listen", description)
        self["listen"].append(description)

    @oneLineHelp
    def opt_metrics(self, description: str) -> None:
        """
        A server endpoint where Prometheus can scrape the relay's metrics
        (needs prometheus-client: pip install 'reconnect[metrics]').
        """
        checkServerEndpoint("metrics", description)
        try:
            import prometheus_client  # noqa: F401
        except ImportError:
            raise UsageError(
                "--metrics needs prometheus-client: pip install 'reconnect[metrics]'"
            ) from None
        self["metrics"] = description

    def postOptions(self) -> None:
        if self["connect"]:
            if self["host"] is not None or self["port"] is not None:
                raise UsageError("give --connect, or --host and --port, not both")
        if self["shuffle"] and len(self["connect"]) < 2:
            raise UsageError("--shuffle needs two --connect or more")
        if self["failback"] is not None and len(self["connect"]) < 2:
            raise UsageError("--failback needs two --connect or more")
        if self["host"] == "":
            raise UsageError("--host must not be empty")
        if not self["connect"]:
            self["host"] = self["host"] or DEFAULT_HOST
            self["port"] = self["port"] or DEFAULT_PORT
        if self["max-delay"] < self["initial-delay"]:
            raise UsageError(
                f"--max-delay ({self['max-delay']}) must not be less than "
                f"--initial-delay ({self['initial-delay']})"
            )
        if not self["factor"] >= 1:
            raise UsageError(
                f"--factor must be a finite number >= 1, not {self['factor']}"
            )
        line = self["heartbeat-line"]
        if not line or "\r" in line or "\n" in line or not line.isascii():
            raise UsageError(
                "--heartbeat-line must be one line of ASCII text, not empty"
            )
        if not self["listen"] and not self["stdin"]:
            self["listen"] = [DEFAULT_LISTEN]
        if self["timeout"] is None and self["stdin"]:
            self["timeout"] = STDIN_TIMEOUT
        elif self["timeout"] == 0:
            self["timeout"] = None
        parent = getattr(self, "parent", None)
        if self["stdin"] and parent is not None and not parent.get("nodaemon"):
            raise UsageError(
                "--stdin needs twistd -n: a daemon has no standard input to read"
            )
        if self["stdin"] and parent is not None:
            if not any(parent.get(k) for k in ("logger", "logfile", "syslog")):
                parent["logger"] = f"{__package__}._relay.stderrLogObserver"
            # A pipe tool runs beside others in one folder: twistd's default
            # pidfile would refuse the second.  One asked for is kept.
            if parent.get("pidfile") == TWISTD_PIDFILE:
                parent["pidfile"] = ""


def _endpoint(
    descriptions: list[str],
    shuffle: bool,
    failback: Optional[float],
    reactor: Any,
) -> Union[str, FailoverEndpoint, None]:
    """
    What C{--connect} asks for: nothing (C{--host} and C{--port} then), one
    endpoint, or a failover endpoint over several.
    """
    if len(descriptions) < 2:
        return descriptions[0] if descriptions else None
    order = "shuffle" if shuffle else "priority"
    return FailoverEndpoint(
        descriptions, order=order, failback=failback, reactor=reactor
    )


def descriptorsAllow(maxClients: int, otherConnections: int = 0) -> int:
    """
    C{maxClients}, or fewer if the process may not open that many file
    descriptors, plus C{otherConnections} (the most the C{--metrics}
    endpoint serves at once), and still keep C{DESCRIPTOR_RESERVE} for its
    own (the server connection, listening sockets, the log): clients past
    the descriptor limit would take the relay's connection to its server
    with them.
    """
    try:
        import resource
    except ImportError:
        return maxClients
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return maxClients
    allowed = max(1, soft - DESCRIPTOR_RESERVE - otherConnections)
    if allowed < maxClients:
        Logger().warn(
            "--max-clients lowered from {asked} to {allowed}: the process may "
            "open only {limit} file descriptors",
            asked=maxClients,
            allowed=allowed,
            limit=soft,
        )
        return allowed
    return maxClients


def makeService(options: Any) -> IService:
    from twisted.internet import reactor

    if options["debug-events"]:
        setDebugEvents(True)
    policy = backoffPolicy(
        options["initial-delay"], options["max-delay"], options["factor"]
    )
    relayed = SayStuffToServerService(
        None if options["connect"] else options["host"],
        None if options["connect"] else options["port"],
        endpoint=_endpoint(
            options["connect"], options["shuffle"], options["failback"], reactor
        ),
        reactor=reactor,
        retryPolicy=policy,
        queueSize=options["queue-size"],
        timeout=options["timeout"],
        heartbeat=options["heartbeat"],
        heartbeatLine=options["heartbeat-line"].encode("ascii"),
    )
    top = MultiService()
    relayed.setServiceParent(top)
    metricsConnections = 0
    if options["metrics"] is not None:
        from ..prometheus import METRICS_MAX_CONNECTIONS

        metricsConnections = METRICS_MAX_CONNECTIONS
    if options["listen"]:
        clients = RelayClients(
            relayed,
            reactor,
            maxClients=descriptorsAllow(options["max-clients"], metricsConnections),
            idleTimeout=options["client-timeout"] or None,
        )
        clients.setServiceParent(top)
    for description in options["listen"]:
        listening(
            serverFromString(reactor, description),
            clients.factory(),
            f"--listen {description}",
        ).setServiceParent(top)
    if options["stdin"]:
        StdinRelayService(relayed, reactor).setServiceParent(top)
    if options["metrics"] is not None:
        from ..prometheus import metricsSite

        listening(
            serverFromString(reactor, options["metrics"]),
            metricsSite({"saystuff": relayed}),
            f"--metrics {options['metrics']}",
        ).setServiceParent(top)
    return top
