"""Secondary Capture images of a radiograph (PS3.3 A.8.1 SC Image IOD), as the overlay and the
explainability map are written: RGB, 8 bits, uncompressed (Explicit VR Little Endian), Burned In
Annotation YES, in the source's study, referencing it. Modality is "OT", never CR/DX, so the
node does not triage its own output."""

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSNearLossless,
)

from dicom_node.outputs.common import (
    CONTENT_QUALIFICATION,
    MANUFACTURER,
    OutputKind,
    add_model_as_contributing_equipment,
    copied_names_allowed,
    instance_number,
    output_uids,
    series_description,
    summary_text,
)
from dicom_node.outputs.source import OutputSource
from inference import BrixiaResult

# Lossy Image Compression Method (0028,2114) implied by a lossy transfer syntax (PS3.3 C.7.6.1.1.5).
_LOSSY_METHODS = {
    JPEGBaseline8Bit: "ISO_10918_1",
    JPEGExtended12Bit: "ISO_10918_1",
    JPEG2000: "ISO_15444_1",
    JPEGLSNearLossless: "ISO_14495_1",
}


def _keep_lossy_history(header: Dataset, syntax: str | None, image: Dataset) -> None:
    """An image derived from a lossy-compressed one stays marked lossy (PS3.3 C.7.6.1.1.5): the
    source's own Lossy Image Compression wins; without one, a lossy transfer syntax implies it."""
    declared = header.get("LossyImageCompression")
    if declared != "01" and (declared == "00" or syntax not in _LOSSY_METHODS):
        return
    method = header.get("LossyImageCompressionMethod") or _LOSSY_METHODS.get(syntax)
    image.LossyImageCompression = "01"
    if method:
        image.LossyImageCompressionMethod = method
    if header.get("LossyImageCompressionRatio"):
        image.LossyImageCompressionRatio = header.LossyImageCompressionRatio


def secondary_capture(
    source: OutputSource,
    result: BrixiaResult,
    kind: OutputKind,
    pixels: np.ndarray,
    series_number: int,
    what: str,
    derivation: str,
) -> hd.sc.SCImage:
    """An RGB SC image of ``pixels`` (rows, cols, 3) derived from ``source``, in its study.

    ``what`` names the series ("Brixia overlay"); ``derivation`` says what was burned in
    (Derivation Description, PS3.3 C.7.6.1). Image Comments holds the summary line of the SR.
    """
    header = source.header
    series_uid, sop_uid = output_uids(source.dataset, result, kind)
    with copied_names_allowed():
        image = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=header,
            pixel_array=pixels,
            photometric_interpretation="RGB",
            bits_allocated=8,
            coordinate_system="PATIENT",
            series_instance_uid=series_uid,
            series_number=series_number,
            sop_instance_uid=sop_uid,
            instance_number=instance_number(source.dataset),
            manufacturer=MANUFACTURER,
            patient_orientation=("L", "F"),  # replaced below by the source's own value
            transfer_syntax_uid=ExplicitVRLittleEndian,
            series_description=series_description(result, what),
            manufacturer_model_name=result.model.name,
            software_versions=result.model.version,
            content_qualification=CONTENT_QUALIFICATION,
        )
        image.copy_patient_and_study_information(header)
    # The pixels keep the source's orientation: copy it, empty (Type 2C) where unknown.
    image.PatientOrientation = header.get("PatientOrientation")
    image.ImageLaterality = "B"  # a frontal chest image shows both lungs (PS3.3 C.7.6.1)
    if header.get("BodyPartExamined"):
        image.BodyPartExamined = header.BodyPartExamined
    image.ConversionType = "WSD"  # produced by a workstation (PS3.3 C.8.6.1)
    image.BurnedInAnnotation = "YES"
    image.ImageComments = summary_text(result)
    image.DerivationDescription = f"{derivation} by {result.model.label}"[:1024]
    reference = Dataset()
    reference.ReferencedSOPClassUID = header.SOPClassUID
    reference.ReferencedSOPInstanceUID = header.SOPInstanceUID
    image.SourceImageSequence = [reference]
    _keep_lossy_history(header, source.transfer_syntax, image)
    add_model_as_contributing_equipment(image, result.model)
    return image
