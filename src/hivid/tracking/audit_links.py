"""The vocabulary of `hivid lineage`: link statuses, ``Link``, ``Lineage``, exit codes, errors.

``hivid.tracking.audit`` walks the chain and re-exports these names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["VERIFIED", "MISMATCH", "UNVERIFIED", "DIRTY"]
CHAIN = ("train_stage2", "train_stage1", "build_dataset", "validate", "annotate", "ingest")
EXIT_VERIFIED, EXIT_MISMATCH, EXIT_UNVERIFIED = 0, 1, 3
MODEL_META = "registered_model_meta"
"""File MLflow adds to a downloaded registered model (its name and version): not model content."""
FILES_TAG, FILES_MANIFEST_TAG = "model.files.sha256", "model.files.manifest"


@dataclass
class Link:
    """One link of the chain: what it is, what was checked, and the outcome."""

    name: str
    status: Status
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Lineage:
    model: str
    links: list[Link]

    @property
    def ok(self) -> bool:
        """No MISMATCH (UNVERIFIED or DIRTY links may remain)."""
        return all(link.status != "MISMATCH" for link in self.links)

    @property
    def verified(self) -> bool:
        """Every link VERIFIED."""
        return all(link.status == "VERIFIED" for link in self.links)

    @property
    def status(self) -> Status:
        states = {link.status for link in self.links}
        for s in ("MISMATCH", "DIRTY", "UNVERIFIED"):
            if s in states:
                return s  # type: ignore[return-value]
        return "VERIFIED"

    def exit_code(self, allow_unverified: bool = False) -> int:
        if not self.ok:
            return EXIT_MISMATCH
        if not self.verified and not allow_unverified:
            return EXIT_UNVERIFIED
        return EXIT_VERIFIED

    def to_dict(self, allow_unverified: bool = False) -> dict[str, Any]:
        return {
            "model": self.model,
            "status": self.status,
            "ok": self.ok,
            "verified": self.verified,
            "exit_code": self.exit_code(allow_unverified),
            "links": [asdict(x) for x in self.links],
        }


class LineageError(RuntimeError):
    """The model reference cannot be resolved (message says which part)."""


class LineageUnavailable(LineageError):
    """The tracking server (or its artifact store) cannot be reached: nothing can be verified."""


_NETWORK_HINTS = (
    "max retries exceeded",
    "connection refused",
    "timed out",
    "timeout",
    "failed to establish a new connection",
    "connection aborted",
    "connection reset",
    "name or service not known",
    "temporary failure in name resolution",
    "could not connect",
    "remote end closed connection",
)


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a network failure, not missing or bad evidence."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, ConnectionError | TimeoutError):
            return True
        name = type(seen).__name__
        if name in {
            "EndpointConnectionError",
            "ConnectTimeoutError",
            "ReadTimeoutError",
            "ConnectionClosedError",
            "MaxRetryError",
            "NewConnectionError",
            "ProtocolError",
        }:
            return True
        if any(h in str(seen).lower() for h in _NETWORK_HINTS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _unavailable(what: str, exc: BaseException) -> LineageUnavailable:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return LineageUnavailable(f"{what}: unreachable ({first[:200]})")
