"""Send output instances to a DICOM destination by C-STORE (PS3.4 Annex B, PS3.7 9.1.1)."""

import logging
from io import BytesIO

import pydicom
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.status import code_to_category

from dicom_node.config import Destination
from dicom_node.tcp import NO_DELAY_HANDLERS
from dicom_node.tls import client_context

log = logging.getLogger(__name__)
NETWORK_TIMEOUT_S = 30


class DispatchError(RuntimeError):
    """The destination refused the connection, rejected or aborted the association, or answered a
    C-STORE with a failure status (worth retrying later); the message says which."""


def _association_failure(association: Association, destination: Destination, connected: bool) -> str:
    """Why an association was not established: refused / rejected (PS3.8 9.3.4) / aborted."""
    if not connected:
        if destination.tls:
            return f"no DICOM TLS connection to {destination}: connection refused or TLS handshake failed"
        return f"connection refused: no DICOM service reachable at {destination.host}:{destination.port}"
    if association.is_rejected:
        reply = association.acceptor.primitive
        return (
            f"association rejected by {destination}: {reply.reason_str} "
            f"({reply.result_str}, source {reply.source_str})"
        )
    return f"association aborted by {destination} before it was established"


def send_instances(instances: list[bytes], destination: Destination, calling_ae: str) -> None:
    """C-STORE Part 10 ``instances`` to ``destination`` over one association (DICOM TLS if the
    destination says so), each in the transfer syntax of its file meta.

    Success and warning statuses count as stored; anything else, or a SOP class and transfer
    syntax the destination did not accept, raises :class:`DispatchError`.
    """
    datasets = [pydicom.dcmread(BytesIO(instance)) for instance in instances]
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = NETWORK_TIMEOUT_S
    for sop_class, syntax in sorted({(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID) for ds in datasets}):
        ae.add_requested_context(sop_class, syntax)
    connected: list[bool] = []
    handlers = [*NO_DELAY_HANDLERS, (evt.EVT_CONN_OPEN, lambda event: connected.append(True))]
    tls = (client_context(destination), destination.host) if destination.tls else None
    association = ae.associate(
        destination.host, destination.port, ae_title=destination.ae_title, evt_handlers=handlers, tls_args=tls
    )
    if not association.is_established:
        raise DispatchError(_association_failure(association, destination, bool(connected)))
    try:
        accepted = {(context.abstract_syntax, context.transfer_syntax[0]) for context in association.accepted_contexts}
        for dataset in datasets:
            syntax = dataset.file_meta.TransferSyntaxUID
            if (dataset.SOPClassUID, syntax) not in accepted:
                refused = f"{dataset.SOPClassUID.name} in {syntax.name}"
                raise DispatchError(f"{destination} accepted no presentation context for {refused}")
            try:
                status = association.send_c_store(dataset)
            except RuntimeError as error:  # pynetdicom: the association ended since the last answer
                raise DispatchError(f"association aborted by {destination} between two C-STOREs") from error
            code = getattr(status, "Status", None)
            if code is None:
                raise DispatchError(f"association aborted by {destination} during the C-STORE")
            if code_to_category(code) not in ("Success", "Warning"):
                failure = f"failure status 0x{code:04X} for {dataset.SOPClassUID.name}"
                raise DispatchError(f"{destination} answered {failure}")
            log.info("stored %s at %s", dataset.SOPClassUID.name, destination)
    finally:
        association.release()
