"""`hivid lineage`: walk a model back to its raw videos and verify every link that can be verified.

Chain: model version (checkpoint, model files) -> train_stage2 run -> train_stage1 run (-> the
warm-start parent model, when stage 1 continued the champion) -> build_dataset run -> validate run
(quality-gate result) -> annotate run (models, prompts) -> ingest run (its manifest) -> data.dvc
md5 + git commit -> raw videos (content hashes). Runs are linked by the ``upstream.<stage>.run``
tags every stage sets. Each link is

- VERIFIED: recomputed from the evidence and equal to what was recorded;
- MISMATCH: recomputed and different, or the evidence is damaged (an artifact that does not
  parse, a missing artifact or object, a run in the wrong state): never a crash;
- DIRTY (git link only): the runs came from a checkout with uncommitted changes;
- UNVERIFIED: nothing to recompute against (no tag recorded, a remote unreachable), with the reason.

Data hashes are recomputed from the DVC objects themselves (``hivid.tracking.dvcobjects``: the
project cache, else the DVC remote, S3 included, streamed), so a clean checkout verifies without
`dvc pull`. Exit codes (``Lineage.exit_code``): 0 only when every link is VERIFIED, 1 for any
MISMATCH, 3 for any UNVERIFIED or DIRTY link (0 with ``allow_unverified``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import mlflow
import yaml
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from hivid.tracking import gitrev
from hivid.tracking.dvcobjects import DvcObjects, NetworkLimits
from hivid.tracking.hashing import file_hashes, listing_sha256, sha256_dir, sha256_file
from hivid.tracking.runs import configure, tracking_uri

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


def resolve_model(ref: str) -> tuple[Any | None, str]:
    """(model version or None, source run id) for ``models:/name@alias``, ``models:/name/N`` or a
    run id."""
    client = MlflowClient()
    if ref.startswith("models:/"):
        body = ref[len("models:/") :]
        try:
            if "@" in body:
                name, alias = body.split("@", 1)
                mv = client.get_model_version_by_alias(name, alias)
            else:
                name, version = body.rsplit("/", 1)
                mv = client.get_model_version(name, version)
        except (mlflow.exceptions.MlflowException, ValueError) as exc:
            if is_unreachable(exc):
                raise _unavailable(f"tracking server {tracking_uri(Path.cwd())}", exc) from None
            raise LineageError(f"{ref}: no such model version ({exc})") from None
        if not mv.run_id:
            raise LineageError(f"{ref}: model version {mv.version} has no source run")
        return mv, mv.run_id
    try:
        client.get_run(ref)
    except mlflow.exceptions.MlflowException as exc:
        if is_unreachable(exc):
            raise _unavailable("tracking server", exc) from None
        raise LineageError(f"{ref}: not a models:/ URI and not a run id") from None
    return None, ref


def checkpoint_dir(model_root: Path) -> Path | None:
    """The narrator directory inside a downloaded pyfunc model (found by its config file)."""
    configs = sorted(model_root.glob("artifacts/*/narrator_config.json"))
    return configs[0].parent if configs else None


def model_file_tags(model_root: Path) -> dict[str, str]:
    """Tags that pin every file of a logged MLflow model directory outside its checkpoint folder
    (MLmodel, the pickled pyfunc wrapper, environment files, ...): ``model.files.sha256`` and a
    ``model.files.manifest`` (JSON ``{path: sha256}``). The checkpoint folder is pinned by
    ``model.sha256``; together they cover every file."""
    ckpt = checkpoint_dir(model_root)
    skip = (MODEL_META, *([ckpt.relative_to(model_root).as_posix()] if ckpt else []))
    hashes = file_hashes(model_root, skip)
    tags = {FILES_TAG: listing_sha256(hashes)}
    manifest = json.dumps(hashes, sort_keys=True, separators=(",", ":"))
    if len(manifest) <= 4500:  # MLflow caps a tag value at 5000 characters
        tags[FILES_MANIFEST_TAG] = manifest
    return tags


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@dataclass
class _Listing:
    """A DVC ``.dir`` object: its link outcome and ``relpath -> md5`` (empty when unreadable)."""

    link: Link
    files: dict[str, str]


def _read_listing(objects: DvcObjects, dir_md5: str, name: str) -> _Listing:
    if not dir_md5.endswith(".dir"):
        return _Listing(Link(name, "UNVERIFIED", f"{dir_md5} is not a directory hash"), {})
    detail: dict[str, Any] = {"md5": dir_md5}
    found, raw = objects.read(dir_md5)
    if raw is None:
        status: Status = (
            "UNVERIFIED" if found.status == "unreachable" or not objects.has_remote else "MISMATCH"
        )
        return _Listing(Link(name, status, f"listing {dir_md5}: {found.why()}", detail), {})
    assert found.digest is not None
    detail["source"] = found.digest.source
    if _md5(raw) != dir_md5.removesuffix(".dir"):
        return _Listing(
            Link(name, "MISMATCH", f"listing {dir_md5}: content hash differs", detail), {}
        )
    try:
        entries = json.loads(raw)
        files = {str(e["relpath"]): str(e["md5"]) for e in entries}
    except (ValueError, TypeError, KeyError) as exc:
        return _Listing(
            Link(name, "MISMATCH", f"listing {dir_md5} does not parse ({exc})", detail), {}
        )
    detail["files"] = len(files)
    return _Listing(
        Link(name, "VERIFIED", f"listing read from {found.digest.source}", detail), files
    )


def verify_data(
    root: Path, data_md5: str, objects: DvcObjects | None = None, skip: set[str] | None = None
) -> tuple[Link, dict[str, str]]:
    """The ``data.dvc md5`` link: the directory listing's hash recomputed from the DVC cache or
    remote, and every object it lists except those in ``skip`` (the raw videos, verified by their
    own links) recomputed; returns the link and the ``relpath -> md5`` listing."""
    objects = objects or DvcObjects(root)
    listing = _read_listing(objects, data_md5, "data.dvc md5")
    if listing.link.status != "VERIFIED":
        return listing.link, listing.files
    detail = listing.link.detail
    bad: list[str] = []
    missing: list[str] = []
    unreachable: list[str] = []
    for rel, md5 in sorted(listing.files.items()):
        if rel in (skip or set()):
            continue
        found = objects.lookup(md5)
        if found.digest is None:
            (unreachable if found.status == "unreachable" else missing).append(rel)
        elif found.digest.md5 != md5:
            bad.append(rel)
    if bad:
        return Link(
            "data.dvc md5", "MISMATCH", f"objects changed: {bad[:5]}", detail
        ), listing.files
    if missing:
        return (
            Link(
                "data.dvc md5",
                "MISMATCH",
                f"{len(missing)} object(s) missing: {missing[:5]}",
                detail,
            ),
            listing.files,
        )
    if unreachable:
        why = "; ".join(f"{k}: {v}" for k, v in objects.down.items())
        return (
            Link(
                "data.dvc md5",
                "UNVERIFIED",
                f"{len(unreachable)} object(s) not checked ({why})",
                detail,
            ),
            listing.files,
        )
    return (
        Link(
            "data.dvc md5",
            "VERIFIED",
            f"listing and {len(listing.files)} objects recomputed from {detail.get('source')}",
            detail,
        ),
        listing.files,
    )


def verify_commit(
    root: Path,
    runs: dict[str, Run],
    version_tags: dict[str, str] | None = None,
    data_md5: str | None = None,
) -> Link:
    """The ``git commit`` link: every run's ``git.commit`` exists here; none ran dirty; the
    version's ``git.revision`` (the nightly's own commit) exists, differs from the training
    commit only in the files the nightly commits, and pins the same data md5."""
    version_tags = version_tags or {}
    commits = {s: r.data.tags.get("git.commit") for s, r in runs.items()}
    detail: dict[str, Any] = {"commits": commits}
    if not runs or not any(commits.values()):
        return Link("git commit", "UNVERIFIED", "runs have no git.commit tag", detail)
    absent = sorted({c for c in commits.values() if c and not gitrev.commit_exists(root, c)})
    if absent:
        return Link(
            "git commit", "MISMATCH", f"{absent} do(es) not exist in this repository", detail
        )
    untagged = sorted(s for s, c in commits.items() if not c)
    revision = version_tags.get("git.revision")
    if revision:
        detail["revision"], detail["branch"] = revision, version_tags.get("git.branch")
        if not gitrev.commit_exists(root, revision):
            return Link(
                "git commit", "MISMATCH", f"git.revision {revision} does not exist here", detail
            )
        trained = commits.get("train_stage2") or next(c for c in commits.values() if c)
        changed = gitrev.changed_between(root, trained, revision)
        extra = sorted(set(changed or []) - set(gitrev.COMMITTED_FILES))
        if changed is None or extra:
            return Link(
                "git commit",
                "MISMATCH",
                f"git.revision {revision[:12]} changes {extra[:5]}",
                detail,
            )
        if data_md5:
            doc = gitrev.show_file(root, revision, "data.dvc")
            try:
                pinned = (yaml.safe_load(doc or "") or {}).get("outs", [{}])[0].get("md5")
            except (yaml.YAMLError, AttributeError, IndexError, TypeError):
                pinned = None
            if pinned != data_md5:
                return Link(
                    "git commit",
                    "MISMATCH",
                    f"data.dvc at git.revision {revision[:12]} pins {pinned}, the runs {data_md5}",
                    detail,
                )
    dirty = {
        s: r.data.tags.get("git.dirty_paths", "")
        for s, r in runs.items()
        if r.data.tags.get("git.dirty") == "true"
    }
    if version_tags.get("git.dirty") == "true":
        dirty.setdefault("model version", "")
    if dirty:
        detail["dirty"] = dirty
        paths = sorted({p for v in dirty.values() for p in v.split(", ") if p})
        return Link(
            "git commit",
            "DIRTY",
            f"{', '.join(sorted(dirty))} ran from a checkout with uncommitted changes "
            f"({', '.join(paths[:5]) or 'paths not recorded'})",
            detail,
        )
    if untagged:
        return Link("git commit", "UNVERIFIED", f"{untagged} have no git.commit tag", detail)
    where = f"; revision {revision[:12]} on {version_tags.get('git.branch')}" if revision else ""
    return Link(
        "git commit",
        "VERIFIED",
        f"{len(set(commits.values()))} commit(s) exist, clean{where}",
        detail,
    )


@contextmanager
def _scratch() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="hivid-lineage-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _artifact_bytes(run_id: str, path: str, tmp: Path) -> tuple[bytes | None, str]:
    """(bytes, "") of a run artifact, or (None, why) when it is missing; a network failure
    raises ``LineageUnavailable``."""
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=path, dst_path=str(tmp)
        )
        return Path(local).read_bytes(), ""
    except Exception as exc:
        if is_unreachable(exc):
            raise _unavailable(f"artifact {path} of run {run_id}", exc) from None
        return None, f"artifact {path} missing ({type(exc).__name__})"


def _dvc_file(objects: DvcObjects, dir_md5: str | None, rel: str) -> tuple[str | None, str]:
    """(md5 DVC recorded for ``rel`` inside output ``dir_md5``, "") or (None, why)."""
    if not dir_md5:
        return None, "no dvc.lock md5 recorded for the output"
    listing = _read_listing(objects, dir_md5, "output")
    if listing.link.status != "VERIFIED":
        return None, listing.link.reason
    if rel not in listing.files:
        return None, f"{rel} not in output {dir_md5}"
    return listing.files[rel], ""


def _run_link(stage: str, run: Run) -> Link:
    keep = ("hivid.stage", "git.commit", "git.dirty", "dvc.data.md5", "gx.result", "parent.run")
    detail: dict[str, Any] = {
        k: v for k, v in run.data.tags.items() if k in keep or k.startswith("dvc.lock.")
    }
    detail["run_id"] = run.info.run_id
    if stage == "annotate":
        detail["params"] = {
            k: v
            for k, v in run.data.params.items()
            if "model" in k or "backend" in k or "prompt" in k
        }
        detail["prompts"] = {k: v for k, v in run.data.tags.items() if k.startswith("prompt.")}
    if run.info.status != "FINISHED":
        return Link(f"{stage} run", "MISMATCH", f"run status {run.info.status}", detail)
    if run.data.tags.get("hivid.stage") != stage:
        return Link(f"{stage} run", "MISMATCH", "run is not a run of this stage", detail)
    return Link(f"{stage} run", "VERIFIED", f"run {run.info.run_id} FINISHED", detail)


def _upstream_md5(runs: dict[str, Run], stage: str) -> str | None:
    """The dvc.lock md5 of ``stage``'s output, as a downstream run recorded it."""
    for r in runs.values():
        md5 = r.data.tags.get(f"dvc.lock.{stage}.md5")
        if md5:
            return md5
    return None


def trace(root: Path, ref: str, limits: NetworkLimits | None = None) -> Lineage:
    """Walk and verify the chain of ``ref`` (see module docstring). A tracking server that cannot
    be reached raises ``LineageUnavailable``; a DVC remote that cannot be reached leaves the data
    links UNVERIFIED."""
    try:
        configure(root)
        return _trace(root, ref, limits)
    except LineageError:
        raise
    except Exception as exc:
        if is_unreachable(exc):
            raise _unavailable(f"tracking server {tracking_uri(root)}", exc) from None
        raise


def _trace(root: Path, ref: str, limits: NetworkLimits | None) -> Lineage:
    client = MlflowClient()
    mv, run_id = resolve_model(ref)
    links: list[Link] = []
    runs: dict[str, Run] = {}
    current: str | None = run_id
    for stage in CHAIN:
        if current is None:
            links.append(Link(f"{stage} run", "UNVERIFIED", "no upstream run recorded"))
            continue
        try:
            run = client.get_run(current)
        except mlflow.exceptions.MlflowException as exc:
            if is_unreachable(exc):
                raise
            # recorded as this stage's run, yet gone from the store (deleted, or a DVC run-cache
            # restore of an output made against another store): the chain is broken here
            links.append(Link(f"{stage} run", "MISMATCH", f"run {current} not in the store"))
            break
        runs[stage] = run
        links.append(_run_link(stage, run))
        nxt = CHAIN[CHAIN.index(stage) + 1] if stage != CHAIN[-1] else None
        current = run.data.tags.get(f"upstream.{nxt}.run") if nxt else None
        if nxt == "train_stage1" and current is None:
            current = run.data.tags.get("init.run")
    objects = DvcObjects(root, limits)
    with _scratch() as tmp:
        if mv is not None:
            links[0:0] = _verify_model(mv, tmp / "model")
        if "train_stage1" in runs:
            warm = _verify_warm_start(runs["train_stage1"], tmp / "parent")
            if warm is not None:
                at = links.index(next(x for x in links if x.name == "train_stage1 run")) + 1
                links.insert(at, warm)
        gate = runs.get("validate")
        if gate is not None:
            links.append(_verify_gate(gate, runs, objects, tmp / "gate"))
        ingest = runs.get("ingest")
        rows: list[dict[str, Any]] | None = None
        if ingest is not None:
            manifest_link, rows = _verify_manifest(ingest, runs, objects, tmp / "manifest")
            links.append(manifest_link)
        tag_source = ingest or next(iter(runs.values()), None)
        data_md5 = tag_source.data.tags.get("dvc.data.md5") if tag_source else None
        videos = {str(r.get("path")) for r in rows or []}
        if data_md5:
            data_link, listing = verify_data(root, data_md5, objects, skip=videos)
        else:
            data_link, listing = Link("data.dvc md5", "UNVERIFIED", "no dvc.data.md5 tag"), {}
        links.append(data_link)
        links.append(verify_commit(root, runs, dict(mv.tags or {}) if mv else {}, data_md5))
        if rows is not None:
            links.extend(_verify_videos(root, rows, listing, objects))
    return Lineage(ref, links)


def _download_model(mv: Any, dest: Path) -> tuple[Path | None, str]:
    try:
        dest.mkdir(parents=True, exist_ok=True)
        local = mlflow.artifacts.download_artifacts(
            f"models:/{mv.name}/{mv.version}", dst_path=str(dest)
        )
        return Path(local), ""
    except Exception as exc:
        if is_unreachable(exc):
            raise _unavailable(f"models:/{mv.name}/{mv.version}", exc) from None
        return None, f"model artifacts missing ({type(exc).__name__}: {str(exc)[:120]})"


def _verify_model(mv: Any, dest: Path) -> list[Link]:
    """The ``model version`` (checkpoint folder, ``model.sha256``) and ``model files`` (every
    other file of the registered MLflow model, ``model.files.sha256``) links."""
    detail = {"name": mv.name, "version": str(mv.version), "aliases": list(mv.aliases or [])}
    tags = mv.tags or {}
    local, why = _download_model(mv, dest)
    return [_checkpoint_link(tags, local, why, detail), _files_link(tags, local, why, detail)]


def _checkpoint_link(
    tags: dict[str, str], local: Path | None, why: str, detail: dict[str, Any]
) -> Link:
    expected = tags.get("model.sha256")
    if not expected:
        return Link("model version", "UNVERIFIED", "no model.sha256 tag recorded", detail)
    if local is None:
        return Link("model version", "MISMATCH", why, detail)
    ckpt = checkpoint_dir(local)
    if ckpt is None:
        return Link(
            "model version", "MISMATCH", "no narrator checkpoint in the model's artifacts", detail
        )
    actual = sha256_dir(ckpt)
    if actual != expected:
        return Link(
            "model version",
            "MISMATCH",
            f"checkpoint sha256 {actual[:12]} != {expected[:12]}",
            detail,
        )
    return Link("model version", "VERIFIED", "checkpoint sha256 recomputed and equal", detail)


def _files_link(tags: dict[str, str], local: Path | None, why: str, detail: dict[str, Any]) -> Link:
    expected = tags.get(FILES_TAG)
    if not expected:
        return Link(
            "model files",
            "UNVERIFIED",
            f"no {FILES_TAG} tag (registered before model files were hashed)",
            detail,
        )
    if local is None:
        return Link("model files", "MISMATCH", why, detail)
    actual = model_file_tags(local)
    if actual[FILES_TAG] == expected:
        n = len(json.loads(actual.get(FILES_MANIFEST_TAG, "{}")))
        return Link(
            "model files",
            "VERIFIED",
            f"{n} model files (MLmodel, pyfunc wrapper, environment) recomputed",
            detail,
        )
    try:
        recorded = json.loads(tags.get(FILES_MANIFEST_TAG, ""))
        now = json.loads(actual.get(FILES_MANIFEST_TAG, "{}"))
        differ = sorted(k for k in set(recorded) | set(now) if recorded.get(k) != now.get(k))
    except ValueError:
        differ = ["(manifest tag unreadable)"]
    return Link(
        "model files", "MISMATCH", f"model files differ from registration: {differ[:5]}", detail
    )


def _verify_warm_start(stage1: Run, dest: Path) -> Link | None:
    """The warm-start link: the model stage 1 continued (hivid.training.warmstart), its recorded
    checkpoint hash checked against the registry and recomputed from its artifacts."""
    tags = stage1.data.tags
    mode = tags.get("warm_start.mode")
    if mode is None:  # trained before incremental training existed
        return None
    detail: dict[str, Any] = {
        k.removeprefix("warm_start."): v for k, v in tags.items() if k.startswith("warm_start.")
    }
    if "upstream.warm_start.run" in tags:
        detail["run_id"] = tags["upstream.warm_start.run"]
    if mode != "warm":
        return Link(
            "warm start", "VERIFIED", f"none: trained from scratch ({detail.get('reason')})", detail
        )
    ref, recorded = tags.get("warm_start.parent", ""), tags.get("warm_start.parent_sha256", "")
    name, _, version = ref.rpartition("/")
    try:
        parent = MlflowClient().get_model_version(name, version)
    except (mlflow.exceptions.MlflowException, ValueError) as exc:
        if is_unreachable(exc):
            raise
        return Link("warm start", "MISMATCH", f"parent {ref} is not in the registry", detail)
    detail["parent_lineage"] = f"hivid lineage models:/{ref}"
    if (parent.tags or {}).get("model.sha256") != recorded:
        return Link(
            "warm start", "MISMATCH", f"{ref} is registered with another checkpoint hash", detail
        )
    local, why = _download_model(parent, dest)
    checked = _checkpoint_link(parent.tags or {}, local, why, {})
    if checked.status != "VERIFIED":
        return Link("warm start", checked.status, f"parent {ref}: {checked.reason}", detail)
    return Link(
        "warm start",
        "VERIFIED",
        f"continued {ref} (chain {detail.get('chain')}): its checkpoint sha256 recomputed, equal",
        detail,
    )


def _verify_gate(gate: Run, runs: dict[str, Run], objects: DvcObjects, tmp: Path) -> Link:
    """The ``quality gate`` link: the gate.json artifact parses, equals the copy DVC recorded in
    outputs/quality (when the listing is reachable), matches the ``gx.result`` tag the training
    runs carry, and says the gate passed."""
    tag = gate.data.tags.get("gx.result", "")
    result_id, _, outcome = tag.partition(":")
    detail: dict[str, Any] = {"gx.result": tag}
    if not tag:
        return Link("quality gate", "MISMATCH", "validate run has no gx.result tag", detail)
    raw, why = _artifact_bytes(gate.info.run_id, "quality/gate.json", tmp)
    if raw is None:
        return Link("quality gate", "MISMATCH", why, detail)
    try:
        report = json.loads(raw)
        if not isinstance(report, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        return Link("quality gate", "MISMATCH", f"gate.json does not parse ({exc})", detail)
    dvc_md5, dvc_why = _dvc_file(objects, _upstream_md5(runs, "validate"), "gate.json")
    if dvc_md5 is not None and dvc_md5 != _md5(raw):
        return Link(
            "quality gate",
            "MISMATCH",
            "gate.json artifact differs from DVC's outputs/quality copy",
            detail,
        )
    if report.get("result_id") != result_id or bool(report.get("success")) != (
        outcome == "success"
    ):
        return Link("quality gate", "MISMATCH", "gate.json differs from the gx.result tag", detail)
    carried = {s: r.data.tags.get("gx.result") for s, r in runs.items() if s.startswith("train")}
    if any(v != tag for v in carried.values()):
        return Link("quality gate", "MISMATCH", f"training runs carry {carried}", detail)
    if outcome != "success":
        return Link("quality gate", "MISMATCH", "the model was trained on a failed gate", detail)
    if dvc_md5 is None:
        detail["dvc_copy"] = dvc_why
        return Link(
            "quality gate",
            "UNVERIFIED",
            f"result {result_id[:12]} passed; gate.json not compared with DVC's copy ({dvc_why})",
            detail,
        )
    return Link(
        "quality gate",
        "VERIFIED",
        f"result {result_id[:12]} passed; gate.json equals DVC's copy",
        detail,
    )


def _verify_manifest(
    ingest: Run, runs: dict[str, Run], objects: DvcObjects, tmp: Path
) -> tuple[Link, list[dict[str, Any]] | None]:
    """The ``ingest manifest`` link: the manifest artifact parses and equals the copy DVC
    recorded in outputs/ingest. Returns the rows the video links check: DVC's copy when it is
    readable (so a damaged artifact flags this link only), else the artifact's."""
    detail: dict[str, Any] = {"run_id": ingest.info.run_id}
    dvc_md5, dvc_why = _dvc_file(objects, _upstream_md5(runs, "ingest"), "manifest.jsonl")
    dvc_rows = None
    if dvc_md5 is not None:
        _, raw_dvc = objects.read(dvc_md5)
        if raw_dvc is not None and _md5(raw_dvc) == dvc_md5:
            dvc_rows = _parse_rows(raw_dvc)
    raw, why = _artifact_bytes(ingest.info.run_id, "ingest/manifest.jsonl", tmp)
    rows = _parse_rows(raw) if raw is not None else None
    fallback = dvc_rows if dvc_rows is not None else rows
    if raw is None:
        return Link("ingest manifest", "MISMATCH", why, detail), fallback
    if rows is None:
        return Link(
            "ingest manifest", "MISMATCH", "manifest.jsonl artifact does not parse", detail
        ), fallback
    if dvc_md5 is None:
        return Link(
            "ingest manifest",
            "UNVERIFIED",
            f"{len(rows)} rows; not compared with DVC's copy ({dvc_why})",
            detail,
        ), rows
    if dvc_md5 != _md5(raw):
        return Link(
            "ingest manifest",
            "MISMATCH",
            "manifest.jsonl artifact differs from DVC's outputs/ingest copy",
            detail,
        ), fallback
    return Link(
        "ingest manifest", "VERIFIED", f"{len(rows)} rows; equals DVC's outputs/ingest copy", detail
    ), rows


def _parse_rows(raw: bytes) -> list[dict[str, Any]] | None:
    try:
        rows = [json.loads(x) for x in raw.decode().splitlines() if x.strip()]
    except (ValueError, UnicodeDecodeError):
        return None
    ok = all(isinstance(r, dict) and {"path", "sha256", "video_id"} <= set(r) for r in rows)
    return rows if ok else None


def _verify_videos(
    root: Path, rows: list[dict[str, Any]], listing: dict[str, str], objects: DvcObjects
) -> list[Link]:
    """One ``raw video <id>`` link per manifest row: its DVC object (cache or remote) streamed,
    md5 equal to the data listing's and sha256 equal to the manifest's; a workspace copy that
    differs is flagged too (``hivid checkout-data`` restores it)."""
    links = []
    for row in rows:
        rel, expected = str(row["path"]), str(row["sha256"])
        name = f"raw video {row['video_id']}"
        detail = {"path": f"data/{rel}", "sha256": expected}
        work = root / "data" / rel
        if rel in listing:
            found = objects.lookup(listing[rel])
            if found.digest is None:
                status: Status = (
                    "UNVERIFIED"
                    if found.status == "unreachable" or not objects.has_remote
                    else "MISMATCH"
                )
                links.append(
                    Link(name, status, f"DVC object {listing[rel][:12]}: {found.why()}", detail)
                )
                continue
            d = found.digest
            detail["source"] = d.source
            if d.md5 != listing[rel] or d.sha256 != expected:
                links.append(
                    Link(
                        name,
                        "MISMATCH",
                        f"{d.source} object: sha256 {d.sha256[:12]} != {expected[:12]}",
                        detail,
                    )
                )
                continue
            if work.is_file():
                wsha = sha256_file(work)
                if wsha != expected:
                    links.append(
                        Link(
                            name,
                            "MISMATCH",
                            f"data/{rel} changed since training (sha256 {wsha[:12]}, trained on "
                            f"{expected[:12]}); `hivid checkout-data` restores it",
                            detail,
                        )
                    )
                    continue
            links.append(
                Link(name, "VERIFIED", f"sha256 {d.sha256[:12]} recomputed from {d.source}", detail)
            )
        elif listing:
            links.append(Link(name, "MISMATCH", f"{rel} is not in the data listing", detail))
        elif work.is_file():
            actual = sha256_file(work)
            status = "VERIFIED" if actual == expected else "MISMATCH"
            links.append(
                Link(
                    name,
                    status,
                    f"workspace data/{rel}: sha256 {actual[:12]} (no DVC listing)",
                    detail,
                )
            )
        else:
            links.append(
                Link(name, "UNVERIFIED", "no DVC listing and not in the workspace", detail)
            )
    return links


def checkout_data(root: Path, ref: str) -> dict[str, str]:
    """Restore ``data/`` to exactly the version ``ref`` was trained on (DVC cache or remote)."""
    import yaml

    configure(root)
    lineage = trace(root, ref)
    data_link = next(x for x in lineage.links if x.name == "data.dvc md5")
    md5 = data_link.detail.get("md5")
    if not md5:
        raise LineageError(f"{ref}: no data version recorded ({data_link.reason})")
    doc = {"outs": [{"md5": md5, "hash": "md5", "path": "data"}]}
    (root / "data.dvc").write_text(yaml.safe_dump(doc, sort_keys=False))
    import sys

    dvc = [sys.executable, "-m", "dvc"]
    proc = subprocess.run(
        [*dvc, "checkout", "--force", "data.dvc"], cwd=root, capture_output=True, text=True
    )
    if proc.returncode != 0:
        proc = subprocess.run(
            [*dvc, "pull", "--force", "data.dvc"], cwd=root, capture_output=True, text=True
        )
    if proc.returncode != 0:
        raise LineageError(f"dvc could not restore data {md5}: {proc.stderr.strip()[-300:]}")
    return {"md5": md5, "data.dvc": str(root / "data.dvc")}
