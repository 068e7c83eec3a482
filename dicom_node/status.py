"""``dicom-node status``: recent receipts and their state, from the journal (no patient data)."""

from rich.table import Table

from dicom_node.journal import Receipt


def receipt_detail(receipt: Receipt) -> str:
    """Global score, regions and model compute time when scored; the reason if any."""
    parts = []
    if receipt.global_score is not None and receipt.region_scores:
        regions = " ".join(f"{k}{v}" for k, v in receipt.region_scores.items())
        parts.append(f"Brixia {receipt.global_score}/18 ({regions})")
    if receipt.compute_ms is not None:
        parts.append(f"model {receipt.compute_ms / 1000:.2f} s")
    if receipt.reason:
        parts.append(receipt.reason)
    return "; ".join(parts)


def status_table(receipts: list[Receipt]) -> Table:
    table = Table(title=f"{len(receipts)} most recent receipts")
    for column in ("received (UTC)", "receipt", "from", "modality", "state", "detail"):
        table.add_column(column)
    for receipt in receipts:
        table.add_row(
            receipt.received_at.replace("T", " ")[:19],
            receipt.id[:12],
            receipt.calling_ae,
            receipt.modality or "",
            str(receipt.state),
            receipt_detail(receipt),
        )
    return table
