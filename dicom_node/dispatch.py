"""Send output instances to a DICOM destination by C-STORE (PS3.4 Annex B, PS3.7 9.1.1)."""

import logging
from pathlib import Path

import pydicom
from pynetdicom import AE
from pynetdicom.status import code_to_category

from dicom_node.config import Destination

log = logging.getLogger(__name__)
NETWORK_TIMEOUT_S = 30


class DispatchError(RuntimeError):
    """The destination refused the association or a C-STORE (worth retrying later)."""


def send_files(paths: list[Path], destination: Destination, calling_ae: str) -> None:
    """C-STORE every Part 10 file in ``paths`` to ``destination`` over one association.

    Success and warning statuses count as stored; anything else raises :class:`DispatchError`.
    """
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in paths]
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = NETWORK_TIMEOUT_S
    for sop_class, syntax in sorted({(h.SOPClassUID, h.file_meta.TransferSyntaxUID) for h in headers}):
        ae.add_requested_context(sop_class, syntax)
    association = ae.associate(destination.host, destination.port, ae_title=destination.ae_title)
    if not association.is_established:
        raise DispatchError(f"association with {destination} was not established")
    try:
        for path, header in zip(paths, headers, strict=True):
            status = association.send_c_store(path)
            code = getattr(status, "Status", None)
            if code is None or code_to_category(code) not in ("Success", "Warning"):
                detail = f"0x{code:04X}" if code is not None else "no response"
                raise DispatchError(f"{destination} answered {detail} for {header.SOPClassUID.name}")
            log.info("stored %s at %s", header.SOPClassUID.name, destination)
    finally:
        association.release()
