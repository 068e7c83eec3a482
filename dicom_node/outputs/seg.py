"""The Brixia segmentation: a Segmentation instance (PS3.3 A.51 Segmentation IOD, C.8.20) of the
lungs and the six Brixia regions on the source radiograph, which viewers such as OHIF show as
toggleable overlays.

BINARY segmentation, one frame per segment, in the source image's pixel grid (the model's maps
resampled to source pixels by nearest neighbour), referencing the source image. Segment 1 is both
lungs, segments 2-7 regions A-F; each segment is coded (Segment Description macro, PS3.3
C.8.20.4): category "Anatomical Structure" (CID 7150), type the lung or lung zone (CID 6171),
laterality as type modifier (CID 244), algorithm type AUTOMATIC with the model's identification
(Algorithm Identification macro, family "Artificial Intelligence" of CID 7162), and the region's
tracking identifier and UID, the same as in the SR. Regions take the overlay's colour for their
score as recommended display colour.

A projection radiograph has no Frame of Reference, but viewers place a SEG by its functional
groups (OHIF reads Pixel Measures and Plane Orientation from the Shared Functional Groups and
shows nothing without them). The SEG therefore defines its own Frame of Reference (PS3.3 A.51-2:
these macros may be present when one is defined) in which the radiograph's pixel grid is the
plane z = 0: Plane Orientation (1, 0, 0, 0, 1, 0), each frame at Plane Position (0, 0, 0), Pixel
Spacing the source's Pixel Spacing, else its Imager Pixel Spacing (at the detector), else 1\1
(the source states none), and a nominal Slice Thickness of 1 mm (a projection has none; the
macro's readers require one). Patient Orientation (Type 2C, PS3.3 C.7.6.1) is copied from the
source.
"""

import copy

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from dicom_node.outputs.common import (
    CONTENT_QUALIFICATION,
    MANUFACTURER,
    add_model_as_contributing_equipment,
    copied_names_allowed,
    instance_number,
    output_uids,
    series_description,
    tracking_uid,
)
from dicom_node.outputs.overlay import PALETTE
from dicom_node.outputs.source import OutputSource
from dicom_node.outputs.sr import LATERALITY_CODES, ZONE_CODES, region_tracking_identifier
from dicom_node.uids import derived_uid
from inference import BrixiaResult
from inference.regions import REGIONS

SEG_SERIES_NUMBER = 9704
RADIOGRAPH_PLANE = (1, 0, 0, 0, 1, 0)  # rows along x, columns along y: the pixel grid itself
NOMINAL_SLICE_THICKNESS_MM = 1
ANATOMICAL_STRUCTURE = codes.SCT.AnatomicalStructure  # 91723000, CID 7150
LUNGS_COLOUR = (86, 180, 233)  # Okabe & Ito sky blue, not one of the score colours
LUNGS_TRACKING_ID = "Lungs"
CONTENT_LABEL = "BRIXIA"


def segment_masks(result: BrixiaResult) -> np.ndarray:
    """(1, rows, cols, 7) bool in source pixels: both lungs, then regions A-F."""
    labels = result.to_source(result.region_map, labels=True)
    lungs = result.to_source(result.lung_mask, labels=True) > 0
    regions = [labels == index for index in range(1, len(REGIONS) + 1)]
    return np.stack([lungs, *regions], axis=-1)[None]


def _segment(
    number: int,
    label: str,
    anatomy: tuple[Code, Code],
    tracking: tuple[str, str],
    colour: tuple[int, int, int],
    result: BrixiaResult,
) -> hd.seg.SegmentDescription:
    """Segment Description of one segment: ``anatomy`` (type, laterality modifier), ``tracking``
    (identifier, UID)."""
    kind, laterality = anatomy
    description = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=label,
        segmented_property_category=ANATOMICAL_STRUCTURE,
        segmented_property_type=kind,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=result.model.name,
            family=codes.cid7162.ArtificialIntelligence,
            version=result.model.version,
            source=MANUFACTURER,
            parameters={"weights sha256": result.model.weights_sha256},
        ),
        tracking_id=tracking[0],
        tracking_uid=tracking[1],
        display_color=hd.color.CIELabColor.from_rgb(*colour),
    )
    # Laterality modifies the type: nested in its item (PS3.3 Table C.8.20-4).
    description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
        hd.sr.CodedConcept.from_code(laterality)
    ]
    return description


def segment_descriptions(source: Dataset, result: BrixiaResult) -> list[hd.seg.SegmentDescription]:
    """Segment 1: both lungs; segments 2-7: Brixia regions A-F."""
    lungs = _segment(
        1,
        "Lungs",
        (codes.SCT.Lung, codes.SCT.Bilateral),
        (LUNGS_TRACKING_ID, tracking_uid(source, result, "lungs")),
        LUNGS_COLOUR,
        result,
    )
    regions = []
    for number, region in enumerate(REGIONS, start=2):
        score = result.region_scores[region.name]
        regions.append(
            _segment(
                number,
                f"Brixia {region.name} ({region.lung} {region.zone}) score {score}",
                (ZONE_CODES[region.zone], LATERALITY_CODES[region.lung]),
                (region_tracking_identifier(region), tracking_uid(source, result, region.name)),
                PALETTE[score],
                result,
            )
        )
    return [lungs, *regions]


def build_seg(output_source: OutputSource, result: BrixiaResult) -> hd.seg.Segmentation:
    """Binary Segmentation of the lungs and the Brixia regions of ``source``, in its study."""
    source = output_source.dataset
    header = copy.copy(output_source.header)  # a shallow copy: its Pixel Spacing goes below
    # Without Pixel Spacing: the Pixel Measures are written with the rest of the geometry below.
    header.pop("PixelSpacing", None)
    series_uid, sop_uid = output_uids(source, result, "seg")
    with copied_names_allowed():
        seg = hd.seg.Segmentation(
            source_images=[header],
            pixel_array=segment_masks(result),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=segment_descriptions(source, result),
            series_instance_uid=series_uid,
            series_number=SEG_SERIES_NUMBER,
            sop_instance_uid=sop_uid,
            instance_number=instance_number(source),
            manufacturer=MANUFACTURER,
            manufacturer_model_name=result.model.name,
            software_versions=result.model.version,
            device_serial_number=result.model.weights_sha256,
            content_label=CONTENT_LABEL,
            content_description=f"{result.model.name} lungs and Brixia regions"[:64],
            omit_empty_frames=False,
            series_description=series_description(result, "Brixia regions"),
            content_qualification=CONTENT_QUALIFICATION,
        )
    seg.PatientOrientation = header.get("PatientOrientation")
    place_on_radiograph(seg, source)
    add_model_as_contributing_equipment(seg, result.model)
    return seg


def pixel_spacing(source: Dataset) -> list[float]:
    """Row and column spacing in mm: Pixel Spacing, else Imager Pixel Spacing, else 1\\1 (a value
    that is not two positive numbers counts as none)."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        try:
            spacing = [float(value) for value in source.get(keyword) or []]
        except (TypeError, ValueError):
            continue
        if len(spacing) == 2 and min(spacing) > 0:
            return spacing
    return [1.0, 1.0]


def place_on_radiograph(seg: hd.seg.Segmentation, source: Dataset) -> None:
    """The SEG's own Frame of Reference with the radiograph as the plane z = 0 (module docstring):
    Pixel Measures and Plane Orientation shared, a Plane Position per frame (PS3.3 C.7.6.16.2.1,
    C.7.6.16.2.3, C.7.6.16.2.4)."""
    seg.FrameOfReferenceUID = derived_uid("frame of reference", str(seg.SOPInstanceUID))
    seg.PositionReferenceIndicator = ""
    measures = Dataset()
    measures.PixelSpacing = pixel_spacing(source)
    measures.SliceThickness = NOMINAL_SLICE_THICKNESS_MM
    orientation = Dataset()
    orientation.ImageOrientationPatient = list(RADIOGRAPH_PLANE)
    shared = Dataset()
    shared.PixelMeasuresSequence = [measures]
    shared.PlaneOrientationSequence = [orientation]
    seg.SharedFunctionalGroupsSequence = [shared]
    for frame in seg.PerFrameFunctionalGroupsSequence:
        position = Dataset()
        position.ImagePositionPatient = [0, 0, 0]
        frame.PlanePositionSequence = [position]
