"""The Storage SCP (pynetdicom): C-ECHO and C-STORE for every storage SOP class and transfer
syntax (PS3.4 Annex B), DICOM TLS when configured (PS3.15 B.9), known senders checked at
association time (PS3.8 A-ASSOCIATE-RJ, "calling AE title not recognised"), under the limits of
:mod:`dicom_node.guard`.

C-STORE: the dataset is spooled as received (Part 10 bytes, no decoding or re-encoding) and
journaled with the destination of the sender's allow entry before the response; storage failure
answers 0xA700 "Out of resources" (PS3.4 Table B.2-1) and leaves nothing behind.
"""

import logging
import threading
from collections.abc import Callable
from ipaddress import ip_address

from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification

from dicom_node.config import NodeSettings
from dicom_node.guard import GuardedAssociationServer, Limits
from dicom_node.peers import Sender, certificate_subject
from dicom_node.spool import Spool, SpoolError
from dicom_node.tcp import NO_DELAY_HANDLERS
from dicom_node.tls import server_context

log = logging.getLogger(__name__)
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
REJECTED_PERMANENT, SERVICE_USER, CALLING_AE_NOT_RECOGNISED = 0x01, 0x01, 0x03  # PS3.8 9.3.4


def build_ae(settings: NodeSettings) -> AE:
    """An AE that accepts verification and every storage SOP class in the transfer syntax the
    sender proposes first.

    Storage uses pynetdicom's unrestricted storage service (a process-wide switch): every
    storage-like context is accepted, private SOP classes included, and negotiation does not
    walk (and copy, per association) a table of every storage class x every transfer syntax,
    which cost about 45 ms per association.
    """
    _config.UNRESTRICTED_STORAGE_SERVICE = True
    ae = AE(ae_title=settings.ae_title)
    ae.maximum_pdu_size = settings.max_pdu_size
    ae.maximum_associations = settings.max_associations
    ae.acse_timeout = settings.negotiation_timeout
    ae.add_supported_context(Verification)
    return ae


def sender_of(association: Association, settings: NodeSettings) -> Sender | None:
    """The allow entry admitting ``association`` (calling AE title, peer address, certificate
    subject when TLS verifies clients), or None."""
    calling_ae = association.requestor.primitive.calling_ae_title
    certificate = getattr(association.dul.socket.socket, "getpeercert", lambda: None)()
    return settings.known_sender(calling_ae, association.requestor.address, certificate_subject(certificate))


def make_sender_check(settings: NodeSettings) -> Callable[[evt.Event], None]:
    """Handler for EVT_REQUESTED: reject (permanent, calling AE title not recognised) an
    association that no allow entry admits, before any negotiation."""

    def check_sender(event: evt.Event) -> None:
        association = event.assoc
        if sender_of(association, settings) is None:
            calling_ae = association.requestor.primitive.calling_ae_title
            log.warning(
                "rejected an association from %s calling itself %r: no allow entry admits it",
                association.requestor.address, calling_ae,
            )
            association.acse.send_reject(REJECTED_PERMANENT, SERVICE_USER, CALLING_AE_NOT_RECOGNISED)
            association.kill()

    return check_sender


def make_store_handler(
    settings: NodeSettings, spool: Spool, on_stored: Callable[[str], None]
) -> Callable[[evt.Event], int]:
    """Handler for EVT_C_STORE: spool + journal, then success; ``on_stored(receipt_id)`` after."""

    def handle_store(event: evt.Event) -> int:
        request = event.request
        calling_ae = event.assoc.requestor.ae_title.strip()
        called_ae = event.assoc.acceptor.ae_title.strip()
        sender = sender_of(event.assoc, settings)
        if sender is None:  # admitted at association: only a changed allow-list gets here
            return OUT_OF_RESOURCES
        destination = settings.destination_of(sender)
        try:
            data = event.encoded_dataset(include_meta=True)
            receipt_id = spool.store(
                data, calling_ae, called_ae, str(request.AffectedSOPClassUID),
                str(request.AffectedSOPInstanceUID), str(destination) if destination else None,
            )
        except SpoolError as error:
            log.error("refused an instance from %s: %s", calling_ae, error)
            return OUT_OF_RESOURCES
        on_stored(receipt_id)
        return SUCCESS

    return handle_store


def _warn_if_open(settings: NodeSettings) -> None:
    """Say loudly at start what an open set-up lets in (docs/security.md)."""
    loopback = settings.host == "localhost" or _is_loopback(settings.host)
    if not settings.allow:
        log.warning(
            "NO ALLOW-LIST: any host that reaches %s:%d may send images and have results written into "
            "the PACS; list known senders with --allow AET@ADDRESS (docs/security.md)",
            settings.host, settings.port,
        )
    if not settings.tls and not loopback:
        log.warning(
            "NO TLS: images and results cross the network unencrypted; give tls_certificate and "
            "tls_private_key (docs/security.md)"
        )


def _is_loopback(host: str) -> bool:
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def start_scp(settings: NodeSettings, spool: Spool, on_stored: Callable[[str], None]) -> GuardedAssociationServer:
    """Start listening on ``settings.host:settings.port`` in background threads."""
    ae = build_ae(settings)
    handlers = [
        (evt.EVT_REQUESTED, make_sender_check(settings)),
        (evt.EVT_C_STORE, make_store_handler(settings, spool, on_stored)),
        *NO_DELAY_HANDLERS,
    ]
    context = None
    if settings.tls_certificate is not None and settings.tls_private_key is not None:
        context = server_context(
            str(settings.tls_certificate), str(settings.tls_private_key),
            str(settings.tls_ca) if settings.tls_ca else None,
        )
    server = ae.make_server(
        (settings.host, settings.port), ssl_context=context, evt_handlers=handlers,
        server_class=GuardedAssociationServer, limits=Limits.of(settings),
    )
    ae._servers.append(server)  # as AE.start_server does: the server's shutdown() removes it
    threading.Thread(target=server.serve_forever, name="dicom-scp", daemon=True).start()
    _warn_if_open(settings)
    mode = "DICOM TLS" + (", client certificates verified" if settings.tls_ca else "") if context else "plain TCP"
    log.info("listening as %s on %s:%d (%s)", settings.ae_title, settings.host, settings.port, mode)
    return server
