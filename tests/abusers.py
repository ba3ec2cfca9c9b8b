"""
Hostile local clients, each its own process (so that a flood costs the test
process nothing, and its latency measurements stay honest):

    python tests/abusers.py MODE PORT [COUNT]

    noread   sends 1,000-byte lines as fast as the socket takes them and
             never reads a reply
    tiny     sends empty lines as fast as it can, reading (and dropping)
             every reply
    idle     opens COUNT connections and sends nothing

Each runs until killed.
"""

from __future__ import annotations

import socket
import sys
import threading


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port))


def noread(port: int) -> None:
    sock = connect(port)
    chunk = (b"x" * 998 + b"\r\n") * 64
    while True:
        sock.sendall(chunk)


def tiny(port: int) -> None:
    sock = connect(port)

    def drain() -> None:
        while sock.recv(1 << 16):
            pass

    threading.Thread(target=drain, daemon=True).start()
    chunk = b"\r\n" * 32768
    while True:
        sock.sendall(chunk)


def idle(port: int, count: int) -> None:
    held = []
    for _ in range(count):
        try:
            held.append(connect(port))
        except OSError:
            pass
    print("opened", len(held), flush=True)
    threading.Event().wait()  # hold them until the test kills this process


if __name__ == "__main__":
    mode, where = sys.argv[1], int(sys.argv[2])
    if mode == "idle":
        idle(where, int(sys.argv[3]))
    else:
        {"noread": noread, "tiny": tiny}[mode](where)
