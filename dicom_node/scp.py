"""The Storage SCP (pynetdicom): C-ECHO and C-STORE for every storage SOP class and transfer
syntax (PS3.4 Annex B), calling-AE allow-list at association time (PS3.8 A-ASSOCIATE-RJ).

C-STORE: the dataset is spooled as received (Part 10 bytes, no decoding or re-encoding) and
journaled before the response; storage failure answers 0xA700 "Out of resources" (PS3.4
Table B.2-1) and leaves nothing behind.
"""

import logging
from collections.abc import Callable

from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import Verification
from pynetdicom.transport import ThreadedAssociationServer

from dicom_node.config import NodeSettings
from dicom_node.spool import Spool, SpoolError
from dicom_node.tcp import NO_DELAY_HANDLERS

log = logging.getLogger(__name__)
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
MAX_PDU = 0  # unlimited receive PDU size: fewer, larger PDUs


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
    ae.maximum_pdu_size = MAX_PDU
    ae.add_supported_context(Verification)
    if settings.allow:
        ae.require_calling_aet = list(settings.allow)
    return ae


def make_store_handler(spool: Spool, on_stored: Callable[[str], None]) -> Callable[[evt.Event], int]:
    """Handler for EVT_C_STORE: spool + journal, then success; ``on_stored(receipt_id)`` after."""

    def handle_store(event: evt.Event) -> int:
        request = event.request
        calling_ae = event.assoc.requestor.ae_title.strip()
        called_ae = event.assoc.acceptor.ae_title.strip()
        try:
            data = event.encoded_dataset(include_meta=True)
            receipt_id = spool.store(
                data, calling_ae, called_ae, str(request.AffectedSOPClassUID),
                str(request.AffectedSOPInstanceUID),
            )
        except SpoolError as error:
            log.error("refused an instance from %s: %s", calling_ae, error)
            return OUT_OF_RESOURCES
        on_stored(receipt_id)
        return SUCCESS

    return handle_store


def start_scp(settings: NodeSettings, spool: Spool, on_stored: Callable[[str], None]) -> ThreadedAssociationServer:
    """Start listening on ``settings.host:settings.port`` in background threads."""
    ae = build_ae(settings)
    handlers = [(evt.EVT_C_STORE, make_store_handler(spool, on_stored)), *NO_DELAY_HANDLERS]
    server = ae.start_server((settings.host, settings.port), block=False, evt_handlers=handlers)
    log.info("listening as %s on %s:%d", settings.ae_title, settings.host, settings.port)
    return server
