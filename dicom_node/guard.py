"""Limits that hold against hostile peers (issue 12; docs/security.md), on pynetdicom's
association server:

- connections per peer address and in total are counted from the moment they are accepted
  (socketserver's ``verify_request``), so sockets that never finish an A-ASSOCIATE-RQ count;
- a deadline for negotiation (TLS handshake and A-ASSOCIATE-RQ, from connection until the
  association is established) and one for each whole PDU from its first byte to its last: not
  per read, so a peer trickling a byte at a time is cut at the deadline;
- the TLS handshake runs in the connection's own thread, never in the accept loop;
- a PDU of a type PS3.8 9.3 does not define, or longer than ``max_pdu_size`` (P-DATA-TF; PS3.8
  9.3.1, D.1) or than :data:`ASSOCIATION_PDU_LIMIT` (other PDUs) is refused from its header,
  before its body is read; a read that is not the body the header announced is refused too, so
  the guard and pynetdicom never disagree on where a PDU begins;
- the fragments of one message (PS3.8 E.2) are counted as they arrive and the connection is cut
  once its dataset exceeds ``max_dataset_size_mb`` or its command set :data:`COMMAND_SET_LIMIT`;
- a request that arrives while :data:`OPERATIONS_WINDOW` requests are not yet answered cuts the
  connection: no asynchronous operations window is negotiated (PS3.7 D.3.3.3), and pynetdicom
  would queue every pipelined request, dataset and all, without bound.

pynetdicom 3.0 offers no public hook for the last three: :class:`GuardedRequestHandler` overrides
its ``RequestHandler._create_association`` to give each association a :class:`GuardedSocket`.
"""

import contextlib
import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from pynetdicom.association import Association
from pynetdicom.transport import AssociationSocket, RequestHandler, ThreadedAssociationServer

from dicom_node.config import NodeSettings

log = logging.getLogger(__name__)
PDU_HEADER = struct.Struct(">BBL")  # PDU type, reserved, length of the rest (PS3.8 9.3.1)
P_DATA_TF = 0x04
PDU_TYPES = frozenset(range(0x01, 0x08))  # A-ASSOCIATE-RQ .. A-ABORT (PS3.8 9.3)
ASSOCIATION_PDU_LIMIT = 1_048_576  # A-ASSOCIATE-RQ with every context a sender could propose fits
COMMAND_SET_LIMIT = 65_536  # a DIMSE command set (PS3.7 E.1) is a few hundred bytes
PDV_HEADER = struct.Struct(">LBB")  # item length, presentation context ID, message control header
COMMAND, LAST = 0x01, 0x02  # message control header bits (PS3.8 E.2)
OPERATIONS_WINDOW = 1  # requests outstanding at once: no asynchronous operations window is negotiated
WATCH_INTERVAL_S = 0.25


@dataclass(frozen=True)
class Limits:
    """The limits of :mod:`dicom_node.guard`, from the node's settings."""

    max_associations: int
    max_associations_per_peer: int
    negotiation_timeout: float
    pdu_timeout: float
    max_pdu_size: int
    max_dataset_bytes: int

    @classmethod
    def of(cls, settings: NodeSettings) -> "Limits":
        return cls(
            settings.max_associations, settings.max_associations_per_peer, settings.negotiation_timeout,
            settings.pdu_timeout, settings.max_pdu_size, settings.max_dataset_size_mb * 2**20,
        )


class LimitExceeded(OSError):
    """A peer broke a limit; pynetdicom's DUL treats it as the connection closing (Evt17)."""


class GuardedSocket(AssociationSocket):
    """An association's socket that reads each PDU under the type and length limits, counts the
    command and dataset fragments of the current message and notes when the PDU being read began.

    pynetdicom builds the acceptor's socket itself (and queues the connection event as it does):
    :meth:`guard` turns that socket into this class rather than building a second one.
    """

    address: str
    limits: Limits
    pdu_started: float | None  # monotonic time of the first byte of the PDU being read
    _pdu_type: int | None
    _body_length: int  # of the PDU whose header was read
    _command_bytes: int
    _dataset_bytes: int

    @classmethod
    def guard(cls, plain: AssociationSocket, address: str, limits: Limits) -> "GuardedSocket":
        plain.__class__ = cls
        guarded = cast(GuardedSocket, plain)
        guarded.address, guarded.limits = address, limits
        guarded.pdu_started = guarded._pdu_type = None
        guarded._body_length = guarded._command_bytes = guarded._dataset_bytes = 0
        guarded._requests = guarded._answers = 0  # command sets received / sent whole (PS3.7 9.1, 9.3)
        return guarded

    def _refuse(self, what: str) -> LimitExceeded:
        log.warning("cut the connection from %s: %s", self.address, what)
        return LimitExceeded(what)

    def recv(self, nr_bytes: int) -> bytearray:
        if self._pdu_type is None:  # pynetdicom's DUL reads the 6-byte header, then the rest
            self.pdu_started = time.monotonic()
            header = super().recv(nr_bytes)
            if len(header) == PDU_HEADER.size:
                pdu_type, _, length = PDU_HEADER.unpack(bytes(header))
                self._check_header(pdu_type, length)
                self._pdu_type, self._body_length = pdu_type, length
            return header
        if nr_bytes != self._body_length:
            raise self._refuse(f"a read of {nr_bytes:,} bytes where the PDU's body has {self._body_length:,}")
        body = super().recv(nr_bytes)
        if self._pdu_type == P_DATA_TF:
            self._count_fragments(body)
        self._pdu_type = self.pdu_started = None
        return body

    def _check_header(self, pdu_type: int, length: int) -> None:
        if pdu_type not in PDU_TYPES:
            raise self._refuse(f"PDU of unknown type 0x{pdu_type:02X}")
        if pdu_type == P_DATA_TF and length > self.limits.max_pdu_size:
            raise self._refuse(f"P-DATA-TF PDU of {length:,} bytes, above max_pdu_size ({self.limits.max_pdu_size:,})")
        limit = max(self.limits.max_pdu_size, ASSOCIATION_PDU_LIMIT)
        if length > limit:
            raise self._refuse(f"PDU of {length:,} bytes, above the limit of {limit:,}")

    def send(self, bytestream: bytes) -> None:
        """Send, counting the answers among the command sets sent (an SCP sends no requests)."""
        offset = 0
        while offset + PDU_HEADER.size <= len(bytestream):
            pdu_type, _, length = PDU_HEADER.unpack_from(bytestream, offset)
            body = bytestream[offset + PDU_HEADER.size:offset + PDU_HEADER.size + length]
            if pdu_type == P_DATA_TF:
                self._answers += sum(1 for _, control in _fragments(body) if control & COMMAND and control & LAST)
            offset += PDU_HEADER.size + length
        super().send(bytestream)

    def _count_fragments(self, body: bytearray) -> None:
        """Add this P-DATA-TF's fragments to its message's command set (control header bit 0 set)
        or dataset (bit 0 clear); the last fragment of either (bit 1 set) ends it. A command set
        ended is a request, refused while :data:`OPERATIONS_WINDOW` are outstanding."""
        for size, control in _fragments(body):
            if control & COMMAND:
                self._command_bytes += size
                if self._command_bytes > COMMAND_SET_LIMIT:
                    raise self._refuse(f"command set above {COMMAND_SET_LIMIT:,} bytes")
                if control & LAST:
                    self._command_bytes = 0
                    self._count_request()
            else:
                self._dataset_bytes += size
                if self._dataset_bytes > self.limits.max_dataset_bytes:
                    limit = self.limits.max_dataset_bytes // 2**20
                    raise self._refuse(f"dataset above max_dataset_size_mb ({limit} MB)")
                if control & LAST:
                    self._dataset_bytes = 0

    def _count_request(self) -> None:
        outstanding = self._requests - self._answers
        if outstanding >= OPERATIONS_WINDOW:
            raise self._refuse(
                f"a request while {outstanding} is outstanding (one operation at a time: no asynchronous "
                "operations window is negotiated, PS3.7 D.3.3.3)"
            )
        self._requests += 1


def _fragments(body: bytes | bytearray) -> Iterator[tuple[int, int]]:
    """(fragment bytes, message control header) of each PDV item of a P-DATA-TF body (PS3.8 9.3.5.1)."""
    offset = 0
    while offset + PDV_HEADER.size <= len(body):
        item_length, _, control = PDV_HEADER.unpack_from(body, offset)
        yield item_length - 2, control
        offset += 4 + item_length


@dataclass
class Connection:
    """One accepted connection, watched until it closes."""

    address: str
    opened: float = field(default_factory=time.monotonic)
    association: Association | None = None
    guarded: GuardedSocket | None = None
    negotiated: bool = False

    def overdue(self, limits: Limits, now: float) -> str:
        """Which deadline this connection has passed, or ""."""
        if self.association is not None and (self.association.is_established or self.association.is_released):
            self.negotiated = True
        if not self.negotiated and now - self.opened > limits.negotiation_timeout:
            return f"association not negotiated within {limits.negotiation_timeout:g} s (negotiation_timeout)"
        started = self.guarded.pdu_started if self.guarded is not None else None
        if started is not None and now - started > limits.pdu_timeout:
            return f"PDU not received whole within {limits.pdu_timeout:g} s (pdu_timeout)"
        return ""


class GuardedRequestHandler(RequestHandler):
    """pynetdicom's handler, giving each association a :class:`GuardedSocket`."""

    server: "GuardedAssociationServer"

    def _create_association(self) -> Association:
        association = super()._create_association()
        plain = cast(AssociationSocket, association.dul.socket)
        guarded = GuardedSocket.guard(plain, str(self.client_address[0]), self.server.limits)
        self.server.watch(self.request, association, guarded)
        return association


class GuardedAssociationServer(ThreadedAssociationServer):
    """pynetdicom's threaded association server under :class:`Limits`."""

    def __init__(self, *args: Any, limits: Limits, **kwargs: Any) -> None:
        self.limits = limits
        self._connections: dict[socket.socket, Connection] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._last_refusal_logged: dict[str, float] = {}
        super().__init__(*args, request_handler=GuardedRequestHandler, **kwargs)
        self._watchdog = threading.Thread(target=self._watch, name="association-watchdog", daemon=True)
        self._watchdog.start()

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        """Accept without the TLS handshake: it runs in the connection's thread, under the deadline."""
        client, address = self.socket.accept()
        if self.ssl_context is not None:
            client = self.ssl_context.wrap_socket(client, server_side=True, do_handshake_on_connect=False)
        return client, address

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Admit a connection while its address and the node are under their caps."""
        address = str(client_address[0])
        with self._lock:
            self._forget_ended()
            total = len(self._connections)
            from_peer = sum(1 for connection in self._connections.values() if connection.address == address)
            if total >= self.limits.max_associations:
                refusal = f"{total} connections open (max_associations)"
            elif from_peer >= self.limits.max_associations_per_peer:
                refusal = f"{from_peer} connections open from it (max_associations_per_peer)"
            else:
                self._connections[request] = Connection(address)
                return True
        self._log_refusal(address, refusal)
        return False

    def _log_refusal(self, address: str, refusal: str) -> None:
        """One line per address and minute: a flood must not flood the log."""
        now = time.monotonic()
        if now - self._last_refusal_logged.get(address, -60.0) >= 60.0:
            self._last_refusal_logged[address] = now
            log.warning("refused a connection from %s: %s", address, refusal)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError) as error:
                log.warning("TLS handshake with %s failed: %s", client_address[0], error)
                self.shutdown_request(request)
                return
        super().process_request_thread(request, client_address)

    def watch(self, request: socket.socket, association: Association, guarded: GuardedSocket) -> None:
        with self._lock:
            connection = self._connections.get(request)
            if connection is not None:
                connection.association, connection.guarded = association, guarded

    def _forget_ended(self) -> None:
        """Drop the connections whose association thread has ended (pynetdicom closes those
        sockets itself, without calling ``shutdown_request``). Called with the lock held."""
        for request, connection in list(self._connections.items()):
            association = connection.association
            if association is not None and association.ident is not None and not association.is_alive():
                del self._connections[request]

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._connections.pop(request, None)
        super().shutdown_request(request)

    def _watch(self) -> None:
        while not self._stopped.wait(WATCH_INTERVAL_S):
            now = time.monotonic()
            with self._lock:
                self._forget_ended()
                connections = list(self._connections.items())
                overdue = [(request, c.address, c.overdue(self.limits, now)) for request, c in connections]
            for request, address, reason in overdue:
                if reason:
                    log.warning("cut the connection from %s: %s", address, reason)
                    self._cut(request)

    def _cut(self, request: socket.socket) -> None:
        """End a connection under its thread's feet: reads and the handshake fail, pynetdicom
        sees the transport closed (Evt17) and the thread ends."""
        with self._lock:
            self._connections.pop(request, None)
        with contextlib.suppress(OSError):
            socket.socket.shutdown(request, socket.SHUT_RDWR)

    def shutdown(self) -> None:
        self._stopped.set()
        super().shutdown()
