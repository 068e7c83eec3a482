"""Read the Brixia scores and image references back out of an output SR (test helper that
walks the SR content tree as any DICOM reader would, independent of how it was built)."""

from collections.abc import Iterator

from pydicom.dataset import Dataset

REGION_LETTERS = "ABCDEF"


def content_items(ds: Dataset) -> Iterator[Dataset]:
    for item in ds.get("ContentSequence", []):
        yield item
        yield from content_items(item)


def concept(item: Dataset) -> str:
    names = item.get("ConceptNameCodeSequence", [])
    return str(names[0].CodeMeaning) if names else ""


def numeric_value(item: Dataset) -> float:
    return float(item.MeasuredValueSequence[0].NumericValue)


def brixia_scores(ds: Dataset) -> tuple[dict[str, int], int]:
    """Region scores {A..F} from the six measurement groups (tracking identifier "... X", the NUM
    item named "... score"; probabilities are other NUM items) and the global score (the NUM item
    whose concept name says "global")."""
    regions: dict[str, int] = {}
    for group in content_items(ds):
        if group.get("ValueType") != "CONTAINER" or concept(group) != "Measurement Group":
            continue
        children = list(group.get("ContentSequence", []))
        tracking = [str(c.TextValue).strip() for c in children if concept(c) == "Tracking Identifier"]
        numbers = [c for c in children if c.get("ValueType") == "NUM" and concept(c).lower().endswith("score")]
        if tracking and tracking[0][-1] in REGION_LETTERS and len(numbers) == 1:
            regions[tracking[0][-1]] = int(numeric_value(numbers[0]))
    totals = [
        int(numeric_value(item)) for item in content_items(ds)
        if item.get("ValueType") == "NUM" and "global" in concept(item).lower()
    ]
    if len(totals) != 1:
        raise AssertionError(f"expected one global score in the SR, found {len(totals)}")
    return dict(sorted(regions.items())), totals[0]


def referenced_sop_instances(ds: Dataset) -> set[str]:
    """SOP Instance UIDs referenced by IMAGE items and the evidence sequences."""
    uids = set()
    for item in content_items(ds):
        for reference in item.get("ReferencedSOPSequence", []):
            uids.add(str(reference.ReferencedSOPInstanceUID))
    for evidence in list(ds.get("CurrentRequestedProcedureEvidenceSequence", [])) + list(
        ds.get("PertinentOtherEvidenceSequence", [])
    ):
        for series in evidence.ReferencedSeriesSequence:
            for reference in series.ReferencedSOPSequence:
                uids.add(str(reference.ReferencedSOPInstanceUID))
    return uids


def outline_centroids(ds: Dataset) -> list[tuple[float, float]]:
    """The mean (column, row) of each SCOORD item's points, in content order: where the SR puts
    each region's outline on the image."""
    centroids = []
    for item in content_items(ds):
        if item.get("ValueType") == "SCOORD":
            points = [float(value) for value in item.GraphicData]
            columns, rows = points[0::2], points[1::2]
            centroids.append((sum(columns) / len(columns), sum(rows) / len(rows)))
    return centroids
