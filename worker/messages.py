"""The typed messages a receipt's chain passes between its tasks (prepare -> infer -> deliver).
Celery carries them as JSON objects; each has a ``kind`` and converts itself both ways. Arrays
inside travel encoded by :mod:`worker.serialization`."""

from dataclasses import dataclass, fields
from typing import Any, ClassVar


@dataclass(frozen=True)
class _Message:
    kind: ClassVar[str]
    receipt_id: str
    token: str  # the journal's task token of the chain (superseded chains stop)

    def to_json(self) -> dict[str, Any]:
        """The message as a JSON object: its fields as they are (``dataclasses.asdict`` would copy
        every nested value of a result, most of the time of queueing it)."""
        return {"kind": self.kind, **{field.name: getattr(self, field.name) for field in fields(self)}}

    @classmethod
    def from_json(cls, message: dict[str, Any]) -> "_Message":
        if message.get("kind") != cls.kind:
            raise ValueError(f"expected a {cls.kind!r} message, got {message.get('kind')!r}")
        return cls(**{f.name: message[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class Prepared(_Message):
    """prepare -> infer: the model input (``encode_prepared``) and the compute time so far."""

    kind: ClassVar[str] = "prepared"
    prepared: dict[str, Any]
    compute_s: float


@dataclass(frozen=True)
class Scored(_Message):
    """infer -> deliver: the result (``encode_result``) and the compute time of both steps."""

    kind: ClassVar[str] = "scored"
    result: dict[str, Any]
    compute_s: float


@dataclass(frozen=True)
class InferenceFailed(_Message):
    """infer -> deliver: the network could not score the image; ``reason`` names stage and cause."""

    kind: ClassVar[str] = "inference-failed"
    reason: str


def inference_outcome(message: dict[str, Any]) -> Scored | InferenceFailed:
    """What infer sent to deliver."""
    kinds = {Scored.kind: Scored, InferenceFailed.kind: InferenceFailed}
    if message.get("kind") not in kinds:
        raise ValueError(f"not an inference outcome: {message.get('kind')!r}")
    return kinds[message["kind"]].from_json(message)
