# The seed's application, on reconnect's SayStuffToServerService.
#
#   twistd -n --pidfile= saystuff-server &   # the bundled line server, port 65432
#   twistd -ny examples/saystuff.tac         # this client
#
# (--pidfile= keeps the server from taking twistd.pid, which the client's
# twistd writes in the same folder.)
#
# Every second it sends a line and logs the reply.  Stop the server and
# start it again: the client reconnects, and lines sent meanwhile wait in
# its queue.  SAYSTUFF_PORT overrides the port.

import os
from itertools import count

from twisted.application import service
from twisted.application.internet import TimerService
from twisted.logger import Logger

from reconnect.saystuff import SayStuffToServerService

log = Logger(namespace="saystuff.tac")
port = int(os.environ.get("SAYSTUFF_PORT", "65432"))

application = service.Application("say-stuff")
sttss = SayStuffToServerService("localhost", port)
sttss.setServiceParent(service.IServiceCollection(application))

numbers = count(1)


def sayHello():
    line = b"hello %d" % next(numbers)
    reply = sttss.sendToServer(line)
    reply.addCallback(lambda answer: log.info("reply: {answer}", answer=answer))
    reply.addErrback(lambda failure: log.warn("no reply: {f}", f=failure.value))


TimerService(1.0, sayHello).setServiceParent(application)
