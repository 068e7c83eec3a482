"""TCP settings for every association the node opens or accepts, and the loopback port probes
the embedded broker (and the tests) use.

A DIMSE exchange is a few small PDUs written back to back (PS3.8 9.3); with Nagle's algorithm a
small write waits for the peer's delayed acknowledgement (up to 40 ms on Linux) whenever data is
still in flight. TCP_NODELAY sends each PDU at once: about 40 ms less per C-STORE.
"""

import contextlib
import os
import socket
from pathlib import Path

from pynetdicom import evt
from pynetdicom.events import EventHandlerType


def disable_nagle(event: evt.Event) -> None:
    """EVT_CONN_OPEN handler: set TCP_NODELAY on the association's socket."""
    connection = event.assoc.dul.socket.socket
    if connection is not None and connection.family in (socket.AF_INET, socket.AF_INET6):
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


NO_DELAY_HANDLERS: list[EventHandlerType] = [(evt.EVT_CONN_OPEN, disable_nagle)]
LOOPBACK = "127.0.0.1"


def free_loopback_port() -> int:
    """A TCP port on the loopback address that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def listening(port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts connections on ``port`` of the loopback address."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


def process_listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` itself holds the socket listening on ``port`` of the loopback
    address (Linux: the socket's inode in /proc/net/tcp, among the process's open files; proc(5)).
    A probe by connection cannot tell: another local user may listen on the port first."""
    address = f"{socket.htonl(0x7F000001):08X}:{port:04X}"  # 127.0.0.1 as /proc/net/tcp writes it
    try:
        rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
        listeners = {f"socket:[{row[9]}]" for row in rows if row[1] == address and row[3] == "0A"}  # 0A: LISTEN
        for descriptor in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(descriptor) in listeners:
                    return True
    except OSError:  # the process is gone
        return False
    return False
