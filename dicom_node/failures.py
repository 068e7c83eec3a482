"""Reasons for receipts that end ``failed``: short, naming the stage and the cause (issue 11,
"Every receipt ends in a named state with a reason"). No patient data: messages of pydicom,
highdicom and the inference package name attributes and values of the pixel module, not people."""

from inference.errors import InferenceError

MAX_REASON = 300


def failure_reason(stage: str, error: Exception) -> str:
    """``"stage: cause"`` on one line: typed errors of the inference package say in words what is
    wrong; anything else is named by its type."""
    cause = str(error) if isinstance(error, InferenceError) else f"{type(error).__name__}: {error}"
    return " ".join(f"{stage}: {cause}".split())[:MAX_REASON]
