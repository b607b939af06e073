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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import yaml
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from hivid.tracking import gitrev
from hivid.tracking.audit_links import (
    _NETWORK_HINTS,
    CHAIN,
    EXIT_MISMATCH,
    EXIT_UNVERIFIED,
    EXIT_VERIFIED,
    FILES_MANIFEST_TAG,
    FILES_TAG,
    MODEL_META,
    Lineage,
    LineageError,
    LineageUnavailable,
    Link,
    Status,
    _unavailable,
    is_unreachable,
)
from hivid.tracking.audit_model import (
    _checkpoint_link,
    _download_model,
    _files_link,
    _verify_model,
    _verify_warm_start,
    checkpoint_dir,
    model_file_tags,
    resolve_model,
)
from hivid.tracking.dvcobjects import DvcObjects, NetworkLimits
from hivid.tracking.hashing import sha256_file
from hivid.tracking.runs import configure, tracking_uri


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


__all__ = [  # the entry module: the chain walk here, its vocabulary and model checks re-exported
    "CHAIN",
    "EXIT_MISMATCH",
    "EXIT_UNVERIFIED",
    "EXIT_VERIFIED",
    "FILES_MANIFEST_TAG",
    "FILES_TAG",
    "MODEL_META",
    "_NETWORK_HINTS",
    "Lineage",
    "LineageError",
    "LineageUnavailable",
    "Link",
    "Status",
    "_checkpoint_link",
    "_download_model",
    "_files_link",
    "_unavailable",
    "_verify_model",
    "_verify_warm_start",
    "checkout_data",
    "checkpoint_dir",
    "is_unreachable",
    "model_file_tags",
    "resolve_model",
    "trace",
    "verify_commit",
    "verify_data",
]
