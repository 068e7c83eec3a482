"""The SR document object that build_sr returns: built around its root item, then given the
content tree, so its highdicom view (``content``) and its evidence must still be its own."""

import highdicom as hd
import pytest

from dicom_node.outputs import OutputSource, build_sr
from inference.regions import REGIONS
from tests.outputs.conftest import LONG_VALUE_WARNING

pytestmark = pytest.mark.filterwarnings(f"ignore:{LONG_VALUE_WARNING}:UserWarning")
SAMPLE = "cr_mono1_explicit_fuji_small.dcm"


def test_sr_content_view_is_the_documents_tree(built) -> None:
    data = built(SAMPLE)
    sr = build_sr(OutputSource.of(data.source), data.result)
    (root,) = sr.content
    assert isinstance(root, hd.sr.ContainerContentItem) and root.relationship_type is None
    assert len(root.ContentSequence) == len(sr.ContentSequence) > 3
    assert list(root.ContentSequence) == list(sr.ContentSequence)
    assert root.ConceptNameCodeSequence == sr.ConceptNameCodeSequence  # TID 1500's title
    assert root.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    typed = hd.sr.Comprehensive3DSR.from_dataset(sr)  # as a reader of the file types it
    assert len(typed.content.get_planar_roi_measurement_groups()) == len(REGIONS)


def test_sr_evidence_is_the_source_alone(built) -> None:
    data = built(SAMPLE)
    source = data.source
    sr = build_sr(OutputSource.of(source), data.result)
    assert sr.get_evidence() == [
        (source.StudyInstanceUID, source.SeriesInstanceUID, source.SOPInstanceUID, source.SOPClassUID)
    ]
    assert "PertinentOtherEvidenceSequence" not in sr
