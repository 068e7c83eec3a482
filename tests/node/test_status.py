"""``dicom-node status``: what each receipt's detail column says."""

from dicom_node.journal import Journal, State
from dicom_node.status import receipt_detail


def test_detail_of_scored_and_skipped_receipts(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite")
    journal.record_receipt("scored", "A", "NODE", "1.2", "1.3", "instances/scored.dcm", None)
    journal.update(
        "scored", state=State.DELIVERED, global_score=4, compute_ms=812,
        region_scores={"A": 1, "B": 0, "C": 0, "D": 2, "E": 1, "F": 0},
    )
    journal.record_receipt("skipped", "A", "NODE", "1.2", "1.4", "instances/skipped.dcm", None)
    journal.update("skipped", state=State.SKIPPED, reason="view position LL: not a frontal view")
    assert receipt_detail(journal.get("scored")) == "Brixia 4/18 (A1 B0 C0 D2 E1 F0); model 0.81 s"
    assert receipt_detail(journal.get("skipped")) == "view position LL: not a frontal view"
    journal.close()
