"""Send output instances to a DICOM destination by C-STORE (PS3.4 Annex B, PS3.7 9.1.1)."""

import logging
from io import BytesIO

import pydicom
from pynetdicom import AE
from pynetdicom.status import code_to_category

from dicom_node.config import Destination
from dicom_node.tcp import NO_DELAY_HANDLERS

log = logging.getLogger(__name__)
NETWORK_TIMEOUT_S = 30


class DispatchError(RuntimeError):
    """The destination refused the association or a C-STORE (worth retrying later)."""


def send_instances(instances: list[bytes], destination: Destination, calling_ae: str) -> None:
    """C-STORE Part 10 ``instances`` to ``destination`` over one association, each in the
    transfer syntax of its file meta.

    Success and warning statuses count as stored; anything else, or a SOP class and transfer
    syntax the destination did not accept, raises :class:`DispatchError`.
    """
    datasets = [pydicom.dcmread(BytesIO(instance)) for instance in instances]
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = NETWORK_TIMEOUT_S
    for sop_class, syntax in sorted({(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID) for ds in datasets}):
        ae.add_requested_context(sop_class, syntax)
    association = ae.associate(
        destination.host, destination.port, ae_title=destination.ae_title, evt_handlers=NO_DELAY_HANDLERS
    )
    if not association.is_established:
        raise DispatchError(f"association with {destination} was not established")
    try:
        accepted = {(context.abstract_syntax, context.transfer_syntax[0]) for context in association.accepted_contexts}
        for dataset in datasets:
            syntax = dataset.file_meta.TransferSyntaxUID
            if (dataset.SOPClassUID, syntax) not in accepted:
                refused = f"{dataset.SOPClassUID.name} in {syntax.name}"
                raise DispatchError(f"{destination} accepted no presentation context for {refused}")
            status = association.send_c_store(dataset)
            code = getattr(status, "Status", None)
            if code is None or code_to_category(code) not in ("Success", "Warning"):
                detail = f"0x{code:04X}" if code is not None else "no response"
                raise DispatchError(f"{destination} answered {detail} for {dataset.SOPClassUID.name}")
            log.info("stored %s at %s", dataset.SOPClassUID.name, destination)
    finally:
        association.release()
