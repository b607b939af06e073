"""`hivid lineage` link by link, without the full chain: each check of `tracking/audit*.py` on
real DVC objects in a temporary cache/remote, a real git repository and real model folders, with
the exact status and reason it promises (the chain itself is `test_audit.py`). Runs and model
versions are plain stand-ins carrying only the tags the checks read."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from hivid.tracking import audit, audit_model
from hivid.tracking.audit import (
    Lineage,
    LineageError,
    LineageUnavailable,
    Link,
    _dvc_file,
    _parse_rows,
    _read_listing,
    _run_link,
    _upstream_md5,
    _verify_gate,
    _verify_manifest,
    _verify_videos,
    is_unreachable,
    verify_commit,
    verify_data,
)
from hivid.tracking.audit_links import _unavailable
from hivid.tracking.audit_model import (
    FILES_MANIFEST_TAG,
    FILES_TAG,
    _checkpoint_link,
    _files_link,
    checkpoint_dir,
    model_file_tags,
)
from hivid.tracking.dvcobjects import DvcObjects, object_rel
from hivid.tracking.hashing import file_hashes, listing_sha256, sha256_dir

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put(base: Path, data: bytes, key: str | None = None) -> str:
    """Store ``data`` as a DVC object under ``base`` (a cache or local remote); its md5."""
    key = key or md5(data)
    path = base / object_rel(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return key


def project(tmp: Path, remote: bool = False) -> Path:
    """A DVC project folder: ``.dvc/cache``, and with ``remote`` a local-folder remote."""
    (tmp / ".dvc" / "cache").mkdir(parents=True)
    if remote:
        (tmp / "remote").mkdir()
        (tmp / ".dvc" / "config").write_text(
            f"[core]\n    remote = r\n['remote \"r\"']\n    url = {tmp / 'remote'}\n"
        )
    return tmp


def cache(root: Path) -> Path:
    return root / ".dvc" / "cache"


def listing(files: dict[str, bytes]) -> bytes:
    return json.dumps([{"relpath": k, "md5": md5(v)} for k, v in files.items()]).encode()


def put_dir(base: Path, files: dict[str, bytes]) -> str:
    """Store the files and their ``.dir`` listing; the listing's DVC hash (``<md5>.dir``)."""
    for data in files.values():
        put(base, data)
    raw = listing(files)
    return put(base, raw, md5(raw) + ".dir")


def fake_run(tags: dict[str, str], run_id: str = "r1", status: str = "FINISHED", **params: str):
    return SimpleNamespace(
        info=SimpleNamespace(run_id=run_id, status=status),
        data=SimpleNamespace(tags=tags, params=params),
    )


# ---------------------------------------------------------------- audit_links: the vocabulary


def links(*states: str) -> Lineage:
    return Lineage("m", [Link(f"l{i}", s, "") for i, s in enumerate(states)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("states", "status", "ok", "verified", "code", "code_allowed"),
    [
        ((), "VERIFIED", True, True, 0, 0),
        (("VERIFIED", "VERIFIED"), "VERIFIED", True, True, 0, 0),
        (("VERIFIED", "UNVERIFIED"), "UNVERIFIED", True, False, 3, 0),
        (("UNVERIFIED", "DIRTY"), "DIRTY", True, False, 3, 0),
        (("DIRTY", "MISMATCH", "UNVERIFIED"), "MISMATCH", False, False, 1, 1),
        (("VERIFIED", "MISMATCH"), "MISMATCH", False, False, 1, 1),
    ],
)
def test_lineage_status_priority_and_exit_codes(
    states: tuple[str, ...], status: str, ok: bool, verified: bool, code: int, code_allowed: int
) -> None:
    lineage = links(*states)
    assert (lineage.status, lineage.ok, lineage.verified) == (status, ok, verified)
    assert lineage.exit_code() == code
    assert lineage.exit_code(allow_unverified=True) == code_allowed


def test_lineage_to_dict() -> None:
    lineage = Lineage("models:/m/1", [Link("a", "UNVERIFIED", "why", {"k": 1})])
    want = {
        "model": "models:/m/1",
        "status": "UNVERIFIED",
        "ok": True,
        "verified": False,
        "exit_code": 3,
        "links": [{"name": "a", "status": "UNVERIFIED", "reason": "why", "detail": {"k": 1}}],
    }
    assert lineage.to_dict() == want
    assert lineage.to_dict(allow_unverified=True) == {**want, "exit_code": 0}
    assert Link("b", "VERIFIED", "").detail == {}


class EndpointConnectionError(Exception):
    """Named like botocore's: recognised by its class name."""


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError("x"),
        TimeoutError("x"),
        EndpointConnectionError("x"),
        *(type(n, (Exception,), {})("x") for n in ("ConnectTimeoutError", "ReadTimeoutError")),
        *(type(n, (Exception,), {})("x") for n in ("ConnectionClosedError", "MaxRetryError")),
        *(type(n, (Exception,), {})("x") for n in ("NewConnectionError", "ProtocolError")),
        *(RuntimeError(f"boom: {h.upper()} here") for h in audit._NETWORK_HINTS),
    ],
)
def test_network_failures_are_unreachable(exc: BaseException) -> None:
    assert is_unreachable(exc)


def test_evidence_failures_are_not_unreachable() -> None:
    assert not is_unreachable(RuntimeError("RESOURCE_DOES_NOT_EXIST: no such run"))
    assert not is_unreachable(ValueError(""))


def chained(depth: int, last: BaseException, via: str = "__cause__") -> BaseException:
    """``depth`` plain errors, each caused by the next, ending in ``last``."""
    exc = last
    for i in range(depth):
        outer = RuntimeError(f"layer {i}")
        setattr(outer, via, exc)
        exc = outer
    return exc


def test_unreachable_is_found_up_to_eight_causes_deep() -> None:
    assert is_unreachable(chained(7, ConnectionResetError()))
    assert is_unreachable(chained(7, ConnectionResetError(), via="__context__"))
    assert not is_unreachable(chained(8, ConnectionResetError()))
    assert not is_unreachable(chained(3, KeyError("k")))


def test_unavailable_names_what_and_the_first_line() -> None:
    got = _unavailable("tracking server x", RuntimeError("  refused\nsecond line"))
    assert isinstance(got, LineageUnavailable) and isinstance(got, LineageError)
    assert str(got) == "tracking server x: unreachable (refused)"
    assert str(_unavailable("s", TimeoutError())) == "s: unreachable (TimeoutError)"
    assert str(_unavailable("s", RuntimeError("a" * 300))) == f"s: unreachable ({'a' * 200})"


# ---------------------------------------------------------------- audit_model: the model files


def model_folder(root: Path, extra: dict[str, bytes] | None = None) -> Path:
    """A downloaded pyfunc model: MLmodel, wrapper, meta file and a narrator checkpoint."""
    files = {
        "MLmodel": b"flavors: {}",
        "python_model.pkl": b"pickle",
        "registered_model_meta": b"name: m",
        "artifacts/narrator/narrator_config.json": b"{}",
        "artifacts/narrator/weights.bin": b"w" * 10,
        **(extra or {}),
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_checkpoint_dir_is_the_first_folder_with_a_narrator_config(tmp_path: Path) -> None:
    assert checkpoint_dir(tmp_path) is None
    model_folder(tmp_path, {"artifacts/b/narrator_config.json": b"{}"})
    (tmp_path / "artifacts" / "aa").mkdir()
    assert checkpoint_dir(tmp_path) == tmp_path / "artifacts" / "b"
    (tmp_path / "artifacts" / "a" / "narrator_config.json").parent.mkdir()
    (tmp_path / "artifacts" / "a" / "narrator_config.json").write_text("{}")
    assert checkpoint_dir(tmp_path) == tmp_path / "artifacts" / "a"


def test_model_file_tags_pin_every_file_outside_the_checkpoint(tmp_path: Path) -> None:
    root = model_folder(tmp_path)
    tags = model_file_tags(root)
    want = {"MLmodel": sha(b"flavors: {}"), "python_model.pkl": sha(b"pickle")}
    assert tags == {
        FILES_TAG: listing_sha256(want),
        FILES_MANIFEST_TAG: json.dumps(want, sort_keys=True, separators=(",", ":")),
    }
    (root / "artifacts" / "narrator" / "narrator_config.json").unlink()  # no checkpoint folder
    assert json.loads(model_file_tags(root)[FILES_MANIFEST_TAG]) == {
        **want,
        "artifacts/narrator/weights.bin": sha(b"w" * 10),
    }


def test_manifest_tag_is_in_path_string_order(tmp_path: Path) -> None:
    root = model_folder(tmp_path, {"env/b": b"1", "env-a": b"2"})  # walked env/b, then env-a
    manifest = model_file_tags(root)[FILES_MANIFEST_TAG]
    assert [k for k in json.loads(manifest)] == ["MLmodel", "env-a", "env/b", "python_model.pkl"]
    assert manifest.startswith('{"MLmodel":"') and ", " not in manifest and ": " not in manifest


def test_download_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    calls: list[tuple[str, str]] = []
    error: list[Exception] = []

    def download(uri: str, dst_path: str) -> str:
        calls.append((uri, dst_path))
        if error:
            raise error[0]
        return str(model_folder(Path(dst_path)))

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", download)
    mv = SimpleNamespace(name="m", version=2, aliases=None, tags={})
    dest = tmp_path / "new" / "model"
    assert audit_model._download_model(mv, dest) == (dest, "")
    assert calls == [("models:/m/2", str(dest))]
    assert audit_model._download_model(mv, dest) == (dest, "")  # into a folder already there
    error.append(OSError("x" * 200))
    assert audit_model._download_model(mv, tmp_path / "d2") == (
        None,
        f"model artifacts missing (OSError: {'x' * 120})",
    )
    error[0] = RuntimeError("Max retries exceeded with url")
    with pytest.raises(LineageUnavailable) as got:
        audit_model._download_model(mv, tmp_path / "d3")
    assert str(got.value) == "models:/m/2: unreachable (Max retries exceeded with url)"
    assert got.value.__cause__ is None and got.value.__suppress_context__


def test_verify_model_gives_both_model_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    root = model_folder(tmp_path / "src")
    tags = {"model.sha256": sha256_dir(root / "artifacts" / "narrator"), **model_file_tags(root)}
    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", lambda uri, dst_path: str(root))
    mv = SimpleNamespace(name="m", version=3, aliases=["champion"], tags=tags)
    detail = {"name": "m", "version": "3", "aliases": ["champion"]}
    assert audit_model._verify_model(mv, tmp_path / "dl") == [
        Link("model version", "VERIFIED", "checkpoint sha256 recomputed and equal", detail),
        Link(
            "model files",
            "VERIFIED",
            "2 model files (MLmodel, pyfunc wrapper, environment) recomputed",
            detail,
        ),
    ]

    def gone(uri: str, dst_path: str) -> str:
        raise OSError("gone")

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", gone)
    got = audit_model._verify_model(mv, tmp_path / "dl3")
    assert [(x.name, x.status, x.reason) for x in got] == [
        ("model version", "MISMATCH", "model artifacts missing (OSError: gone)"),
        ("model files", "MISMATCH", "model artifacts missing (OSError: gone)"),
    ]
    bare = SimpleNamespace(name="m", version=3, aliases=None, tags=None)
    got = audit_model._verify_model(bare, tmp_path / "dl2")
    assert [(x.status, x.detail["aliases"]) for x in got] == [("UNVERIFIED", [])] * 2


def manifest_length(root: Path) -> int:
    hashes = file_hashes(root, ("registered_model_meta", "artifacts/narrator"))
    return len(json.dumps(hashes, sort_keys=True, separators=(",", ":")))


@pytest.mark.parametrize(("length", "has_manifest"), [(4500, True), (4501, False)])
def test_manifest_tag_only_up_to_4500_characters(
    tmp_path: Path, length: int, has_manifest: bool
) -> None:
    root = model_folder(tmp_path)
    for i in range(53):  # 53 x 79 characters: under the cap
        (root / f"env{i:02d}.txt").write_bytes(b"e")
    name = "p" * (length - manifest_length(root) - 70)  # an entry: its name + 70 characters
    assert 0 < len(name) < 200
    (root / name).write_bytes(b"e")
    assert manifest_length(root) == length
    tags = model_file_tags(root)
    assert (FILES_MANIFEST_TAG in tags) is has_manifest
    assert tags[FILES_TAG] == listing_sha256(
        file_hashes(root, ("registered_model_meta", "artifacts/narrator"))
    )


def test_checkpoint_link_each_outcome(tmp_path: Path) -> None:
    root = model_folder(tmp_path)
    good = sha256_dir(root / "artifacts" / "narrator")
    d = {"name": "m"}
    assert _checkpoint_link({}, root, "", d) == Link(
        "model version", "UNVERIFIED", "no model.sha256 tag recorded", d
    )
    assert _checkpoint_link({"model.sha256": good}, None, "gone", d) == Link(
        "model version", "MISMATCH", "gone", d
    )
    assert _checkpoint_link({"model.sha256": good}, root, "", d) == Link(
        "model version", "VERIFIED", "checkpoint sha256 recomputed and equal", d
    )
    other = "f" * 64
    assert _checkpoint_link({"model.sha256": other}, root, "", d) == Link(
        "model version", "MISMATCH", f"checkpoint sha256 {good[:12]} != {other[:12]}", d
    )
    assert _checkpoint_link({"model.sha256": good}, tmp_path / "artifacts", "", d) == Link(
        "model version", "MISMATCH", "no narrator checkpoint in the model's artifacts", d
    )


def test_files_link_each_outcome(tmp_path: Path) -> None:
    root = model_folder(tmp_path)
    tags = model_file_tags(root)
    d = {"v": "1"}
    assert _files_link({}, root, "", d) == Link(
        "model files",
        "UNVERIFIED",
        f"no {FILES_TAG} tag (registered before model files were hashed)",
        d,
    )
    assert _files_link(tags, None, "gone", d) == Link("model files", "MISMATCH", "gone", d)
    assert _files_link(tags, root, "", d) == Link(
        "model files",
        "VERIFIED",
        "2 model files (MLmodel, pyfunc wrapper, environment) recomputed",
        d,
    )
    (root / "python_model.pkl").write_bytes(b"forged")
    (root / "conda.yaml").write_bytes(b"new")
    assert _files_link(tags, root, "", d) == Link(
        "model files",
        "MISMATCH",
        "model files differ from registration: ['conda.yaml', 'python_model.pkl']",
        d,
    )
    assert _files_link({FILES_TAG: tags[FILES_TAG]}, root, "", d).reason == (
        "model files differ from registration: ['(manifest tag unreadable)']"
    )
    for i in range(7):
        (root / f"x{i}").write_bytes(b"x")
    assert _files_link(tags, root, "", d).reason == (
        "model files differ from registration: ['conda.yaml', 'python_model.pkl', 'x0', 'x1', 'x2']"
    )


def test_files_link_names_the_recorded_files_when_the_model_grew_past_the_manifest_cap(
    tmp_path: Path,
) -> None:
    root = model_folder(tmp_path)
    tags = model_file_tags(root)
    for i in range(70):
        (root / f"env{i:02d}.txt").write_bytes(b"e")
    assert FILES_MANIFEST_TAG not in model_file_tags(root)
    assert _files_link(tags, root, "", {}).reason == (
        "model files differ from registration: ['MLmodel', 'python_model.pkl']"
    )


def test_files_link_verified_without_a_manifest_tag_counts_none(tmp_path: Path) -> None:
    root = model_folder(tmp_path)
    for i in range(70):
        (root / f"env{i:02d}.txt").write_bytes(b"e")
    tags = model_file_tags(root)
    assert FILES_MANIFEST_TAG not in tags
    assert _files_link(tags, root, "", {}).reason.startswith("0 model files")


class FakeClient:
    """MlflowClient stand-in: model versions by (name, version) and alias, runs by id."""

    versions: ClassVar[dict[tuple[str, str], Any]] = {}
    aliases: ClassVar[dict[tuple[str, str], Any]] = {}
    runs: ClassVar[set[str]] = set()
    error: ClassVar[Exception | None] = None

    def _raise(self, what: str) -> None:
        import mlflow

        if self.error is not None:
            raise self.error
        raise mlflow.exceptions.MlflowException(f"{what} not found")

    def get_model_version(self, name: str, version: str) -> Any:
        if (name, version) not in self.versions:
            self._raise(f"{name}/{version}")
        return self.versions[(name, version)]

    def get_model_version_by_alias(self, name: str, alias: str) -> Any:
        if (name, alias) not in self.aliases:
            self._raise(f"{name}@{alias}")
        return self.aliases[(name, alias)]

    def get_run(self, run_id: str) -> Any:
        if run_id not in self.runs:
            self._raise(run_id)
        return fake_run({}, run_id)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> type[FakeClient]:
    mv = SimpleNamespace(name="m", version="2", run_id="run-2", tags={}, aliases=["champion"])
    FakeClient.versions = {("m", "2"): mv, ("m", "3"): SimpleNamespace(version="3", run_id="")}
    FakeClient.aliases = {("m", "champion"): mv}
    FakeClient.runs = {"run-9"}
    FakeClient.error = None
    monkeypatch.setattr(audit_model, "MlflowClient", FakeClient)
    return FakeClient


def test_resolve_model_alias_version_and_run_id(client: type[FakeClient]) -> None:
    mv = client.versions[("m", "2")]
    assert audit_model.resolve_model("models:/m@champion") == (mv, "run-2")
    assert audit_model.resolve_model("models:/m/2") == (mv, "run-2")
    assert audit_model.resolve_model("run-9") == (None, "run-9")
    # the alias is everything after the first "@", the version what follows the last "/"
    client.aliases[("m", "a@b")] = client.versions[("team/m", "2")] = mv
    assert audit_model.resolve_model("models:/m@a@b") == (mv, "run-2")
    assert audit_model.resolve_model("models:/team/m/2") == (mv, "run-2")
    with pytest.raises(LineageError, match=r"^models:/m/3: model version 3 has no source run$"):
        audit_model.resolve_model("models:/m/3")
    with pytest.raises(LineageError, match=r"^models:/m@gone: no such model version \(m@gone"):
        audit_model.resolve_model("models:/m@gone")
    with pytest.raises(LineageError, match=r"^models:/nosuch: no such model version \("):
        audit_model.resolve_model("models:/nosuch")  # no "/<version>": ValueError, one line
    with pytest.raises(LineageError, match=r"^run-0: not a models:/ URI and not a run id$"):
        audit_model.resolve_model("run-0")


def test_resolve_model_unreachable_server(client: type[FakeClient]) -> None:
    import mlflow

    client.error = mlflow.exceptions.MlflowException("API request failed: Connection refused")
    with pytest.raises(
        LineageUnavailable,
        match=r"^tracking server .*: unreachable \(API request failed: Connection refused\)$",
    ):
        audit_model.resolve_model("models:/m/9")
    with pytest.raises(LineageUnavailable, match=r"^tracking server: unreachable \(API request"):
        audit_model.resolve_model("run-0")


def stage1(**tags: str) -> Any:
    return fake_run({f"warm_start.{k}": v for k, v in tags.items()})


def test_warm_start_link_without_download(client: type[FakeClient]) -> None:
    assert audit_model._verify_warm_start(fake_run({}), Path("/nonexistent")) is None
    full = audit_model._verify_warm_start(stage1(mode="full", reason="no champion"), Path("/x"))
    assert full == Link(
        "warm start",
        "VERIFIED",
        "none: trained from scratch (no champion)",
        {"mode": "full", "reason": "no champion"},
    )
    run = stage1(mode="warm", parent="m/7", parent_sha256="abc")
    run.data.tags["upstream.warm_start.run"] = "ws-1"
    got = audit_model._verify_warm_start(run, Path("/x"))
    assert got == Link(
        "warm start",
        "MISMATCH",
        "parent m/7 is not in the registry",
        {"mode": "warm", "parent": "m/7", "parent_sha256": "abc", "run_id": "ws-1"},
    )
    client.versions[("m", "2")].tags = {"model.sha256": "other"}
    got = audit_model._verify_warm_start(
        stage1(mode="warm", parent="m/2", parent_sha256="abc"), Path("/x")
    )
    assert got is not None and (got.status, got.reason) == (
        "MISMATCH",
        "m/2 is registered with another checkpoint hash",
    )
    assert got.detail["parent_lineage"] == "hivid lineage models:/m/2"
    # no parent recorded: looked up as "" (not found); the name is what precedes the last "/"
    got = audit_model._verify_warm_start(stage1(mode="warm"), Path("/x"))
    assert got is not None and got.reason == "parent  is not in the registry"
    client.versions[("team/m", "7")] = SimpleNamespace(version="7", tags={"model.sha256": "h"})
    got = audit_model._verify_warm_start(
        stage1(mode="warm", parent="team/m/7", parent_sha256="other"), Path("/x")
    )
    assert got is not None and got.reason == "team/m/7 is registered with another checkpoint hash"
    import mlflow

    client.error = mlflow.exceptions.MlflowException("Connection refused by the server")
    with pytest.raises(mlflow.exceptions.MlflowException):  # the walk says: unreachable
        audit_model._verify_warm_start(stage1(mode="warm", parent="m/5"), Path("/x"))


def test_warm_start_link_checks_the_downloaded_parent(
    client: type[FakeClient], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = model_folder(tmp_path / "parent")
    good = sha256_dir(root / "artifacts" / "narrator")
    client.versions[("m", "2")].tags = {"model.sha256": good}
    monkeypatch.setattr(audit_model, "_download_model", lambda mv, dest: (root, ""))
    run = stage1(mode="warm", parent="m/2", parent_sha256=good, chain="2")
    detail = {
        "mode": "warm",
        "parent": "m/2",
        "parent_sha256": good,
        "chain": "2",
        "parent_lineage": "hivid lineage models:/m/2",
    }
    got = audit_model._verify_warm_start(run, tmp_path)
    assert got == Link(
        "warm start",
        "VERIFIED",
        "continued m/2 (chain 2): its checkpoint sha256 recomputed, equal",
        detail,
    )
    # a parent hash recorded by neither side: "" on the run, no tag (or "") on the parent
    client.versions[("m", "2")].tags = {}
    got = audit_model._verify_warm_start(stage1(mode="warm", parent="m/2"), tmp_path)
    assert got is not None and (got.status, got.reason) == (
        "MISMATCH",
        "m/2 is registered with another checkpoint hash",
    )
    client.versions[("m", "2")].tags = {"model.sha256": ""}
    got = audit_model._verify_warm_start(stage1(mode="warm", parent="m/2"), tmp_path)
    assert got is not None and (got.status, got.reason) == (
        "UNVERIFIED",
        "parent m/2: no model.sha256 tag recorded",
    )
    client.versions[("m", "2")].tags = {"model.sha256": good}
    (root / "artifacts" / "narrator" / "weights.bin").write_bytes(b"forged")
    got = audit_model._verify_warm_start(run, tmp_path)
    now = sha256_dir(root / "artifacts" / "narrator")
    assert got == Link(
        "warm start", "MISMATCH", f"parent m/2: checkpoint sha256 {now[:12]} != {good[:12]}", detail
    )
    gone = "model artifacts missing (OSError: gone)"
    monkeypatch.setattr(audit_model, "_download_model", lambda mv, dest: (None, gone))
    got = audit_model._verify_warm_start(run, tmp_path)
    assert got == Link("warm start", "MISMATCH", f"parent m/2: {gone}", detail)


# ---------------------------------------------------------------- audit: data listing and objects


def test_read_listing_each_outcome(tmp_path: Path) -> None:
    root = project(tmp_path)
    objects = DvcObjects(root)
    assert _read_listing(objects, "abc", "data") == audit._Listing(
        Link("data", "UNVERIFIED", "abc is not a directory hash"), {}
    )
    files = {"a.mp4": b"A", "b/c.json": b"C"}
    key = put_dir(cache(root), files)
    got = _read_listing(objects, key, "data")
    assert got.files == {"a.mp4": md5(b"A"), "b/c.json": md5(b"C")}
    assert got.link == Link(
        "data", "VERIFIED", "listing read from cache", {"md5": key, "source": "cache", "files": 2}
    )
    absent = "0" * 32 + ".dir"
    got = _read_listing(objects, absent, "data")
    assert got.files == {} and got.link.status == "UNVERIFIED"  # no remote: nothing to ask
    assert got.link.reason == f"listing {absent}: not found"
    forged = put(cache(root), b"[]", "1" * 32 + ".dir")
    got = _read_listing(objects, forged, "data")
    assert got.link == Link(
        "data",
        "MISMATCH",
        f"listing {forged}: content hash differs",
        {"md5": forged, "source": "cache"},
    )
    for raw in (b"[not json", b"[1]", b'[{"relpath": "a"}]'):
        bad = put(cache(root), raw, md5(raw) + ".dir")
        got = _read_listing(objects, bad, "data")
        assert (got.link.status, got.files) == ("MISMATCH", {})
        assert got.link.reason.startswith(f"listing {bad} does not parse (")


def test_read_listing_missing_from_the_remote_is_a_mismatch(tmp_path: Path) -> None:
    root = project(tmp_path, remote=True)
    objects = DvcObjects(root)
    absent = "0" * 32 + ".dir"
    got = _read_listing(objects, absent, "data")
    assert (got.link.status, got.link.detail) == ("MISMATCH", {"md5": absent})
    key = put_dir(tmp_path / "remote", {"a": b"A"})
    assert _read_listing(objects, key, "data").link.detail["source"] == "remote r"
    objects2 = DvcObjects(root)
    objects2.down["remote r"] = "connection refused"
    got = _read_listing(objects2, absent, "data")
    assert got.link.status == "UNVERIFIED"
    assert got.link.reason == f"listing {absent}: remote r unreachable (connection refused)"


def test_verify_data_each_outcome(tmp_path: Path) -> None:
    root = project(tmp_path, remote=True)
    files = {"videos/v.mp4": b"V", "metadata/v.json": b"M", "x.txt": b"X"}
    key = put_dir(cache(root), files)
    link, got = verify_data(root, key)
    assert got == {k: md5(v) for k, v in files.items()}
    assert link == Link(
        "data.dvc md5",
        "VERIFIED",
        "listing and 3 objects recomputed from cache",
        {"md5": key, "source": "cache", "files": 3},
    )
    link, _ = verify_data(root, "abc")
    assert (link.status, link.reason) == ("UNVERIFIED", "abc is not a directory hash")
    # skip: the raw videos are verified by their own links
    (cache(root) / object_rel(md5(b"V"))).write_bytes(b"forged")
    assert verify_data(root, key, skip={"videos/v.mp4"})[0].status == "VERIFIED"
    detail = {"md5": key, "source": "cache", "files": 3}
    link, _ = verify_data(root, key)
    assert link == Link("data.dvc md5", "MISMATCH", "objects changed: ['videos/v.mp4']", detail)
    x_obj = cache(root) / object_rel(md5(b"X"))
    x_obj.write_bytes(b"forged too")  # listed after the skipped video: still checked
    link, _ = verify_data(root, key, skip={"videos/v.mp4"})
    assert link == Link("data.dvc md5", "MISMATCH", "objects changed: ['x.txt']", detail)
    (cache(root) / object_rel(md5(b"V"))).unlink()
    x_obj.unlink()
    link, _ = verify_data(root, key)
    assert link == Link(
        "data.dvc md5", "MISMATCH", "2 object(s) missing: ['videos/v.mp4', 'x.txt']", detail
    )
    objects = DvcObjects(root)
    objects.down["remote r"] = "timed out"
    objects.down["remote s"] = "refused"
    objects.sources = objects.sources[:1]
    link, _ = verify_data(root, key, objects)
    assert link == Link(
        "data.dvc md5",
        "UNVERIFIED",
        "2 object(s) not checked (remote r: timed out; remote s: refused)",
        detail,
    )


def test_verify_data_lists_five_changed_objects_at_most(tmp_path: Path) -> None:
    root = project(tmp_path)
    files = {f"f{i}": bytes([i]) for i in range(7)}
    key = put_dir(cache(root), files)
    for data in files.values():
        (cache(root) / object_rel(md5(data))).write_bytes(b"forged")
    link, _ = verify_data(root, key)
    assert link.reason == "objects changed: ['f0', 'f1', 'f2', 'f3', 'f4']"
    for data in files.values():
        (cache(root) / object_rel(md5(data))).unlink()
    assert verify_data(root, key)[0].reason == (
        "7 object(s) missing: ['f0', 'f1', 'f2', 'f3', 'f4']"
    )


def test_dvc_file(tmp_path: Path) -> None:
    root = project(tmp_path)
    objects = DvcObjects(root)
    key = put_dir(cache(root), {"gate.json": b"G"})
    assert _dvc_file(objects, key, "gate.json") == (md5(b"G"), "")
    assert _dvc_file(objects, key, "other") == (None, f"other not in output {key}")
    assert _dvc_file(objects, None, "gate.json") == (
        None,
        "no dvc.lock md5 recorded for the output",
    )
    assert _dvc_file(objects, "", "gate.json")[0] is None
    assert _dvc_file(objects, "abc", "gate.json") == (None, "abc is not a directory hash")


def test_run_link_and_upstream_md5() -> None:
    tags = {
        "hivid.stage": "annotate",
        "git.commit": "c",
        "dvc.lock.ingest.md5": "m",
        "prompt.relevance.sha256": "p",
        "other": "x",
    }
    kept = {"git.dirty": "false", "dvc.data.md5": "d", "gx.result": "g:success", "parent.run": "p"}
    assert _run_link("ingest", fake_run({"hivid.stage": "ingest", **kept}, "i1")).detail == {
        "hivid.stage": "ingest",
        **kept,
        "run_id": "i1",
    }
    failed = _run_link("ingest", fake_run({"hivid.stage": "ingest"}, "i1", status="FAILED"))
    assert failed == Link(
        "ingest run", "MISMATCH", "run status FAILED", {"hivid.stage": "ingest", "run_id": "i1"}
    )
    run = fake_run(tags, "a1", whisper_model="small", llm_backend="local", seed="1", prompt_x="y")
    got = _run_link("annotate", run)
    assert got == Link(
        "annotate run",
        "VERIFIED",
        "run a1 FINISHED",
        {
            "hivid.stage": "annotate",
            "git.commit": "c",
            "dvc.lock.ingest.md5": "m",
            "run_id": "a1",
            "params": {"whisper_model": "small", "llm_backend": "local", "prompt_x": "y"},
            "prompts": {"prompt.relevance.sha256": "p"},
        },
    )
    assert "params" not in _run_link("ingest", fake_run({"hivid.stage": "ingest"})).detail
    assert _run_link("ingest", fake_run({"hivid.stage": "ingest"}, status="FAILED")).reason == (
        "run status FAILED"
    )
    wrong = _run_link("ingest", fake_run({"hivid.stage": "validate"}))
    assert wrong == Link(
        "ingest run",
        "MISMATCH",
        "run is not a run of this stage",
        {"hivid.stage": "validate", "run_id": "r1"},
    )
    runs = {"a": fake_run({}), "b": fake_run({"dvc.lock.ingest.md5": "m1"})}
    assert _upstream_md5(runs, "ingest") == "m1"
    assert _upstream_md5(runs, "validate") is None


def test_parse_rows() -> None:
    row = {"path": "videos/v.mp4", "sha256": "s", "video_id": "v"}
    assert _parse_rows(f"{json.dumps(row)}\n\n  \n{json.dumps(row)}\n".encode()) == [row, row]
    assert _parse_rows(b"") == []
    assert _parse_rows(b"{not json") is None
    assert _parse_rows(b"\xff\xfe") is None
    assert _parse_rows(b'{"path": "p", "sha256": "s"}') is None
    assert _parse_rows(b"[1]") is None


# ---------------------------------------------------------------- audit: raw videos


def test_verify_videos_each_outcome(tmp_path: Path) -> None:
    root = project(tmp_path, remote=True)
    v0, v1 = b"video zero", b"video one"
    put(cache(root), v0)
    put(cache(root), b"forged", md5(v1))
    rows = [
        {"path": "videos/v0.mp4", "sha256": sha(v0), "video_id": "v0"},
        {"path": "videos/v1.mp4", "sha256": sha(v1), "video_id": "v1"},
        {"path": "videos/v2.mp4", "sha256": sha(b"2"), "video_id": "v2"},
        {"path": "videos/v3.mp4", "sha256": sha(b"3"), "video_id": "v3"},
    ]
    listed = {"videos/v0.mp4": md5(v0), "videos/v1.mp4": md5(v1), "videos/v2.mp4": md5(b"2")}
    got = _verify_videos(root, rows, listed, DvcObjects(root))
    assert [(x.name, x.status, x.reason) for x in got] == [
        ("raw video v0", "VERIFIED", f"sha256 {sha(v0)[:12]} recomputed from cache"),
        (
            "raw video v1",
            "MISMATCH",
            f"cache object: sha256 {sha(b'forged')[:12]} != {sha(v1)[:12]}",
        ),
        (
            "raw video v2",
            "MISMATCH",
            f"DVC object {md5(b'2')[:12]}: not in cache; not in remote r",
        ),
        ("raw video v3", "MISMATCH", "videos/v3.mp4 is not in the data listing"),
    ]
    assert got[0].detail == {"path": "data/videos/v0.mp4", "sha256": sha(v0), "source": "cache"}
    assert [x.detail for x in got[1:]] == [
        {"path": "data/videos/v1.mp4", "sha256": sha(v1), "source": "cache"},
        {"path": "data/videos/v2.mp4", "sha256": sha(b"2")},
        {"path": "data/videos/v3.mp4", "sha256": sha(b"3")},
    ]
    # a workspace copy that differs from what was trained on
    (root / "data" / "videos").mkdir(parents=True)
    (root / "data" / "videos" / "v0.mp4").write_bytes(b"edited")
    (link,) = _verify_videos(root, rows[:1], listed, DvcObjects(root))
    assert (link.name, link.detail) == ("raw video v0", got[0].detail)
    assert (link.status, link.reason) == (
        "MISMATCH",
        f"data/videos/v0.mp4 changed since training (sha256 {sha(b'edited')[:12]}, trained on "
        f"{sha(v0)[:12]}); `hivid checkout-data` restores it",
    )
    (root / "data" / "videos" / "v0.mp4").write_bytes(v0)
    assert _verify_videos(root, rows[:1], listed, DvcObjects(root))[0].status == "VERIFIED"


def test_verify_videos_object_md5_must_match_the_listing(tmp_path: Path) -> None:
    root = project(tmp_path)
    v0 = b"video zero"
    put(cache(root), v0, "a" * 32)  # the right bytes, stored under another object name
    rows = [{"path": "v0.mp4", "sha256": sha(v0), "video_id": "v0"}]
    (link,) = _verify_videos(root, rows, {"v0.mp4": "a" * 32}, DvcObjects(root))
    assert link.status == "MISMATCH"


def test_verify_videos_without_a_listing_or_a_reachable_remote(tmp_path: Path) -> None:
    root = project(tmp_path)
    v0 = b"video zero"
    rows = [
        {"path": "v0.mp4", "sha256": sha(v0), "video_id": "v0"},
        {"path": "v1.mp4", "sha256": sha(b"1"), "video_id": "v1"},
        {"path": "v2.mp4", "sha256": sha(b"2"), "video_id": "v2"},
    ]
    (root / "data").mkdir()
    (root / "data" / "v0.mp4").write_bytes(v0)
    (root / "data" / "v1.mp4").write_bytes(b"edited")
    got = _verify_videos(root, rows, {}, DvcObjects(root))
    assert [x.name for x in got] == ["raw video v0", "raw video v1", "raw video v2"]
    assert [x.detail["path"] for x in got] == ["data/v0.mp4", "data/v1.mp4", "data/v2.mp4"]
    assert [(x.status, x.reason) for x in got] == [
        ("VERIFIED", f"workspace data/v0.mp4: sha256 {sha(v0)[:12]} (no DVC listing)"),
        ("MISMATCH", f"workspace data/v1.mp4: sha256 {sha(b'edited')[:12]} (no DVC listing)"),
        ("UNVERIFIED", "no DVC listing and not in the workspace"),
    ]
    # listed, but the only source holding it is down: not checked, not a mismatch
    root2 = project(tmp_path / "p2", remote=True)
    objects = DvcObjects(root2)
    objects.down["remote r"] = "timed out"
    (link,) = _verify_videos(root2, rows[:1], {"v0.mp4": md5(v0)}, objects)
    assert (link.status, link.reason) == (
        "UNVERIFIED",
        f"DVC object {md5(v0)[:12]}: not in cache; remote r unreachable (timed out)",
    )
    (link,) = _verify_videos(root, rows[:1], {"v0.mp4": md5(v0)}, DvcObjects(root))
    assert (link.status, link.reason) == ("UNVERIFIED", f"DVC object {md5(v0)[:12]}: not in cache")


# ---------------------------------------------------------------- audit: gate and manifest


@pytest.fixture
def artifacts(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Run artifacts by path, served to the checks in place of the tracking server's."""
    store: dict[str, bytes] = {}

    def fetch(run_id: str, path: str, tmp: Path) -> tuple[bytes | None, str]:
        assert isinstance(tmp, Path)  # downloaded into the audit's scratch folder
        if path in store:
            return store[path], ""
        return None, f"artifact {path} missing (OSError)"

    monkeypatch.setattr(audit, "_artifact_bytes", fetch)
    return store


GATE = {"result_id": "res-123456789012345", "success": True}


def gate_runs(root: Path, gate: bytes, tag: str = "res-123456789012345:success") -> dict[str, Any]:
    key = put_dir(cache(root), {"gate.json": gate})
    return {
        "train_stage2": fake_run({"gx.result": tag, "dvc.lock.validate.md5": key}),
        "train_stage1": fake_run({"gx.result": tag}),
        "validate": fake_run({"gx.result": tag}, "val-1"),
    }


def test_gate_link_verified_and_each_mismatch(tmp_path: Path, artifacts: dict[str, bytes]) -> None:
    root = project(tmp_path)
    raw = json.dumps(GATE).encode()
    runs = gate_runs(root, raw)
    objects = DvcObjects(root)
    tag = "res-123456789012345:success"

    def check(**over: Any) -> Link:
        r = {**runs, **over}
        return _verify_gate(r["validate"], r, objects, tmp_path)

    missing = check()
    assert missing == Link(
        "quality gate",
        "MISMATCH",
        "artifact quality/gate.json missing (OSError)",
        {"gx.result": tag},
    )
    artifacts["quality/gate.json"] = raw
    assert check() == Link(
        "quality gate",
        "VERIFIED",
        "result res-12345678 passed; gate.json equals DVC's copy",
        {"gx.result": tag},
    )
    assert check(validate=fake_run({})) == Link(
        "quality gate", "MISMATCH", "validate run has no gx.result tag", {"gx.result": ""}
    )
    carried = check(train_stage1=fake_run({"gx.result": "other:success"}))
    assert carried == Link(
        "quality gate",
        "MISMATCH",
        f"training runs carry {{'train_stage2': '{tag}', 'train_stage1': 'other:success'}}",
        {"gx.result": tag},
    )
    for content, reason in [
        (b"[1]", "gate.json does not parse (not a JSON object)"),
        (b'{"result_id": ', "gate.json does not parse (Expecting value"),
        (
            json.dumps({**GATE, "x": 1}).encode(),
            "gate.json artifact differs from DVC's outputs/quality copy",
        ),
    ]:
        artifacts["quality/gate.json"] = content
        got = check()
        assert got.status == "MISMATCH" and got.reason.startswith(reason), got.reason
        assert (got.name, got.detail) == ("quality gate", {"gx.result": tag})


@pytest.mark.parametrize(
    ("gate", "tag", "reason"),
    [
        (
            {**GATE, "result_id": "res-2"},
            "res-123456789012345:success",
            "gate.json differs from the gx.result tag",
        ),
        (
            {**GATE, "success": False},
            "res-123456789012345:success",
            "gate.json differs from the gx.result tag",
        ),
        (
            {**GATE, "success": False},
            "res-123456789012345:failure",
            "the model was trained on a failed gate",
        ),
        (GATE, "res-123456789012345:failure", "gate.json differs from the gx.result tag"),
    ],
)
def test_gate_link_against_its_tag(
    tmp_path: Path, artifacts: dict[str, bytes], gate: dict[str, Any], tag: str, reason: str
) -> None:
    root = project(tmp_path)
    raw = json.dumps(gate).encode()
    runs = gate_runs(root, raw, tag)
    artifacts["quality/gate.json"] = raw
    got = _verify_gate(runs["validate"], runs, DvcObjects(root), tmp_path)
    assert got == Link("quality gate", "MISMATCH", reason, {"gx.result": tag})


def test_gate_link_without_dvc_copy_is_unverified(
    tmp_path: Path, artifacts: dict[str, bytes]
) -> None:
    root = project(tmp_path)
    artifacts["quality/gate.json"] = json.dumps(GATE).encode()
    tag = "res-123456789012345:success"
    runs = {"validate": fake_run({"gx.result": tag})}
    got = _verify_gate(runs["validate"], runs, DvcObjects(root), tmp_path)
    why = "no dvc.lock md5 recorded for the output"
    assert got == Link(
        "quality gate",
        "UNVERIFIED",
        f"result res-12345678 passed; gate.json not compared with DVC's copy ({why})",
        {"gx.result": tag, "dvc_copy": why},
    )


ROWS = [{"path": "videos/v0.mp4", "sha256": "s0", "video_id": "v0"}]


def manifest_runs(root: Path, raw: bytes | None) -> dict[str, Any]:
    tags = {}
    if raw is not None:
        tags["dvc.lock.ingest.md5"] = put_dir(cache(root), {"manifest.jsonl": raw})
    return {"validate": fake_run(tags), "ingest": fake_run({}, "ing-1")}


def test_manifest_link_each_outcome(tmp_path: Path, artifacts: dict[str, bytes]) -> None:
    root = project(tmp_path)
    raw = b"".join(json.dumps(r).encode() + b"\n" for r in ROWS)
    runs = manifest_runs(root, raw)
    objects = DvcObjects(root)

    def check(r: dict[str, Any] = runs) -> tuple[Link, Any]:
        return _verify_manifest(r["ingest"], r, objects, tmp_path)

    d = {"run_id": "ing-1"}
    missing = ("MISMATCH", "artifact ingest/manifest.jsonl missing (OSError)")
    link, rows = check()
    assert ((link.name, link.status, link.reason), link.detail, rows) == (
        ("ingest manifest", *missing),
        d,
        ROWS,
    )
    artifacts["ingest/manifest.jsonl"] = raw
    assert check() == (
        Link("ingest manifest", "VERIFIED", "1 rows; equals DVC's outputs/ingest copy", d),
        ROWS,
    )
    artifacts["ingest/manifest.jsonl"] = b"{broken"
    assert check() == (
        Link("ingest manifest", "MISMATCH", "manifest.jsonl artifact does not parse", d),
        ROWS,
    )
    forged = [{**ROWS[0], "sha256": "forged"}]
    artifacts["ingest/manifest.jsonl"] = json.dumps(forged[0]).encode()
    assert check() == (
        Link(
            "ingest manifest",
            "MISMATCH",
            "manifest.jsonl artifact differs from DVC's outputs/ingest copy",
            d,
        ),
        ROWS,  # DVC's copy: the video links check what DVC recorded
    )
    alone = manifest_runs(root, None)
    assert check(alone) == (
        Link(
            "ingest manifest",
            "UNVERIFIED",
            "1 rows; not compared with DVC's copy (no dvc.lock md5 recorded for the output)",
            d,
        ),
        forged,
    )
    del artifacts["ingest/manifest.jsonl"]
    link, rows = check(alone)
    assert (link.status, rows) == ("MISMATCH", None)


def test_manifest_link_ignores_a_damaged_dvc_copy(
    tmp_path: Path, artifacts: dict[str, bytes]
) -> None:
    root = project(tmp_path)
    raw = json.dumps(ROWS[0]).encode()
    runs = manifest_runs(root, raw)
    (cache(root) / object_rel(md5(raw))).write_bytes(
        b'{"path": "x", "sha256": "y", "video_id": "z"}'
    )
    artifacts["ingest/manifest.jsonl"] = b"{broken"
    link, rows = _verify_manifest(runs["ingest"], runs, DvcObjects(root), tmp_path)
    assert (link.status, rows) == ("MISMATCH", None)  # neither copy is usable
    other = [{**ROWS[0], "sha256": "other"}]
    artifacts["ingest/manifest.jsonl"] = json.dumps(other[0]).encode()
    link, rows = _verify_manifest(runs["ingest"], runs, DvcObjects(root), tmp_path)
    assert (link.reason, rows) == (
        "manifest.jsonl artifact differs from DVC's outputs/ingest copy",
        other,  # DVC's copy unreadable: the artifact's rows are the ones left to check
    )


def test_artifact_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    calls: list[dict[str, str]] = []
    error: list[Exception] = []

    def download(**kwargs: str) -> str:
        calls.append(kwargs)
        if error:
            raise error[0]
        out = Path(kwargs["dst_path"]) / kwargs["artifact_path"]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"content")
        return str(out)

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", download)
    assert audit._artifact_bytes("r1", "quality/gate.json", tmp_path) == (b"content", "")
    assert calls == [
        {"run_id": "r1", "artifact_path": "quality/gate.json", "dst_path": str(tmp_path)}
    ]
    error.append(OSError("no such file"))
    assert audit._artifact_bytes("r1", "quality/gate.json", tmp_path) == (
        None,
        "artifact quality/gate.json missing (OSError)",
    )
    error[0] = RuntimeError("Connection refused\nmore")
    with pytest.raises(LineageUnavailable) as got:
        audit._artifact_bytes("r1", "quality/gate.json", tmp_path)
    assert (
        str(got.value) == "artifact quality/gate.json of run r1: unreachable (Connection refused)"
    )


# ---------------------------------------------------------------- audit: git commit


def git(root: Path, *args: str) -> str:
    proc = subprocess.run([*GIT, *args], cwd=root, capture_output=True, text=True, check=True)
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A repository: ``trained`` (data.dvc pins md5 d1), ``nightly`` (only dvc.lock and
    data.dvc changed, pins d2), ``code`` (also changes src.py)."""
    root = tmp_path_factory.mktemp("git")
    git(root, "init", "-q", "-b", "main")
    (root / "src.py").write_text("a = 1\n")
    (root / "data.dvc").write_text("outs:\n- md5: d1.dir\n  path: data\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "trained")
    trained = git(root, "rev-parse", "HEAD")
    (root / "data.dvc").write_text("outs:\n- md5: d2.dir\n  path: data\n")
    (root / "dvc.lock").write_text("stages: {}\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "nightly")
    nightly = git(root, "rev-parse", "HEAD")
    (root / "src.py").write_text("a = 2\n")
    (root / "data.dvc").write_text("outs: [not, a, mapping]\n")
    git(root, "commit", "-q", "-am", "code")
    code = git(root, "rev-parse", "HEAD")
    (root / "data.dvc").write_text("::: not yaml\n  - [")
    git(root, "commit", "-q", "-am", "broken")
    broken = git(root, "rev-parse", "HEAD")
    return {"root": root, "trained": trained, "nightly": nightly, "code": code, "broken": broken}


def commit_runs(*commits: str | None, dirty: str | None = None) -> dict[str, Any]:
    stages = ["train_stage2", "train_stage1", "ingest"]
    runs = {}
    for stage, c in zip(stages, commits, strict=False):
        tags = {"git.commit": c} if c else {}
        if dirty is not None and stage == "ingest":
            tags.update({"git.dirty": "true", "git.dirty_paths": dirty})
        runs[stage] = fake_run(tags)
    return runs


def test_commit_link_verified(repo: dict[str, Any]) -> None:
    root, trained, nightly = repo["root"], repo["trained"], repo["nightly"]
    got = verify_commit(root, commit_runs(trained, trained))
    assert got == Link(
        "git commit",
        "VERIFIED",
        "1 commit(s) exist, clean",
        {"commits": {"train_stage2": trained, "train_stage1": trained}},
    )
    tags = {"git.revision": nightly, "git.branch": "nightly/1"}
    got = verify_commit(root, commit_runs(trained, nightly), tags, "d2.dir")
    assert (got.status, got.reason) == (
        "VERIFIED",
        f"2 commit(s) exist, clean; revision {nightly[:12]} on nightly/1",
    )
    assert (got.detail["revision"], got.detail["branch"]) == (nightly, "nightly/1")
    assert verify_commit(root, commit_runs(trained), tags, None).status == "VERIFIED"


def test_commit_link_unverified(repo: dict[str, Any]) -> None:
    root, trained = repo["root"], repo["trained"]
    assert verify_commit(root, {}) == Link(
        "git commit", "UNVERIFIED", "runs have no git.commit tag", {"commits": {}}
    )
    assert verify_commit(root, commit_runs(None, None)).reason == "runs have no git.commit tag"
    got = verify_commit(root, commit_runs(None, trained, None))
    assert got == Link(
        "git commit",
        "UNVERIFIED",
        "['ingest', 'train_stage2'] have no git.commit tag",
        {"commits": {"train_stage2": None, "train_stage1": trained, "ingest": None}},
    )


def test_commit_link_mismatches(repo: dict[str, Any]) -> None:
    root, trained, nightly, code = repo["root"], repo["trained"], repo["nightly"], repo["code"]
    gone = "1" * 40
    got = verify_commit(root, commit_runs(trained, gone, "2" * 40))
    assert got == Link(
        "git commit",
        "MISMATCH",
        f"['{gone}', '{'2' * 40}'] do(es) not exist in this repository",
        {"commits": {"train_stage2": trained, "train_stage1": gone, "ingest": "2" * 40}},
    )
    one = {"commits": {"train_stage2": trained}}
    got = verify_commit(root, commit_runs(trained), {"git.revision": gone})
    assert got == Link(
        "git commit",
        "MISMATCH",
        f"git.revision {gone} does not exist here",
        {**one, "revision": gone, "branch": None},
    )
    got = verify_commit(root, commit_runs(trained), {"git.revision": code, "git.branch": "b"})
    assert got == Link(
        "git commit",
        "MISMATCH",
        f"git.revision {code[:12]} changes ['src.py']",
        {**one, "revision": code, "branch": "b"},
    )
    got = verify_commit(root, commit_runs(trained), {"git.revision": nightly}, "d1.dir")
    assert got == Link(
        "git commit",
        "MISMATCH",
        f"data.dvc at git.revision {nightly[:12]} pins d2.dir, the runs d1.dir",
        {**one, "revision": nightly, "branch": None},
    )
    # the training commit is train_stage2's, else the first run that has one
    got = verify_commit(root, commit_runs(None, code), {"git.revision": code}, None)
    assert (got.status, got.reason) == ("UNVERIFIED", "['train_stage2'] have no git.commit tag")
    got = verify_commit(root, commit_runs(code, trained), {"git.revision": code}, None)
    assert got.status == "VERIFIED"
    got = verify_commit(root, commit_runs(trained, code), {"git.revision": code}, None)
    assert got.status == "MISMATCH"
    # ... whatever the order of the runs
    runs = {"train_stage1": fake_run({"git.commit": trained}), **commit_runs(code)}
    assert verify_commit(root, runs, {"git.revision": code}, None).status == "VERIFIED"


def test_commit_link_unreadable_data_dvc_pins_nothing(repo: dict[str, Any]) -> None:
    root = repo["root"]
    for rev in (repo["code"], repo["broken"]):
        got = verify_commit(root, commit_runs(rev), {"git.revision": rev}, "d1.dir")
        assert (got.status, got.reason) == (
            "MISMATCH",
            f"data.dvc at git.revision {rev[:12]} pins None, the runs d1.dir",
        )


def test_commit_link_dirty(repo: dict[str, Any]) -> None:
    root, trained = repo["root"], repo["trained"]
    got = verify_commit(root, commit_runs(trained, trained, trained, dirty="b.py, a.py"))
    assert got.status == "DIRTY"
    assert got.reason == "ingest ran from a checkout with uncommitted changes (a.py, b.py)"
    assert got.detail["dirty"] == {"ingest": "b.py, a.py"}
    got = verify_commit(
        root, commit_runs(trained, trained, trained, dirty=""), {"git.dirty": "true"}
    )
    assert got.reason == (
        "ingest, model version ran from a checkout with uncommitted changes (paths not recorded)"
    )
    assert got.detail["dirty"] == {"ingest": "", "model version": ""}
    no_paths = {"ingest": fake_run({"git.commit": trained, "git.dirty": "true"})}
    assert verify_commit(root, no_paths).reason == (
        "ingest ran from a checkout with uncommitted changes (paths not recorded)"
    )
    assert verify_commit(root, commit_runs(trained), {"git.dirty": "false"}).status == "VERIFIED"
    many = ", ".join(f"f{i}.py" for i in range(7))
    got = verify_commit(root, commit_runs(trained, None, trained, dirty=many))
    assert got.reason.endswith("(f0.py, f1.py, f2.py, f3.py, f4.py)")  # dirty beats untagged


# ---------------------------------------------------------------- audit: the chain walk


class RunStore:
    """MlflowClient stand-in for the walk: runs by id (``error`` raised by every lookup)."""

    runs: ClassVar[dict[str, Any]] = {}
    error: ClassVar[Exception | None] = None

    def get_run(self, run_id: str) -> Any:
        import mlflow

        if self.error is not None:
            raise self.error
        if run_id not in self.runs:
            raise mlflow.exceptions.MlflowException(f"Run '{run_id}' not found")
        return self.runs[run_id]


STAGE_IDS = {s: f"run-{s}" for s in audit.CHAIN}


def chain_runs(data_md5: str, **extra: dict[str, str]) -> dict[str, Any]:
    """One run per stage, each naming the next upstream (train_stage2 -> ... -> ingest)."""
    runs = {}
    for stage, nxt in zip(audit.CHAIN, (*audit.CHAIN[1:], None), strict=True):
        tags = {"hivid.stage": stage}
        if nxt:
            tags[f"upstream.{nxt}.run"] = STAGE_IDS[nxt]
        tags.update(extra.get(stage, {}))
        runs[STAGE_IDS[stage]] = fake_run(tags, STAGE_IDS[stage])
    runs[STAGE_IDS["ingest"]].data.tags["dvc.data.md5"] = data_md5
    return runs


@pytest.fixture
def walk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, artifacts: dict[str, bytes]
) -> dict[str, Any]:
    """A project with one video in the DVC cache, its manifest artifact, and the run store."""
    root = project(tmp_path / "proj")
    video = b"video zero"
    row = {"path": "videos/v0.mp4", "sha256": sha(video), "video_id": "v0"}
    data_md5 = put_dir(cache(root), {"videos/v0.mp4": video, "metadata/v0.json": b"{}"})
    artifacts["ingest/manifest.jsonl"] = json.dumps(row).encode()
    RunStore.runs, RunStore.error = chain_runs(data_md5), None
    monkeypatch.setattr(audit, "MlflowClient", RunStore)
    monkeypatch.setattr(audit, "resolve_model", lambda ref: (None, ref))
    monkeypatch.setattr(audit, "configure", lambda root: "exp")
    return {"root": root, "data_md5": data_md5}


RUN_LINKS = [f"{s} run" for s in audit.CHAIN]


def names_and_statuses(lineage: Lineage) -> list[tuple[str, str]]:
    return [(x.name, x.status) for x in lineage.links]


def test_walk_follows_the_upstream_tags_to_the_raw_videos(walk: dict[str, Any]) -> None:
    lineage = audit.trace(walk["root"], STAGE_IDS["train_stage2"])
    assert lineage.model == STAGE_IDS["train_stage2"]
    assert names_and_statuses(lineage) == [
        *((n, "VERIFIED") for n in RUN_LINKS),
        ("quality gate", "MISMATCH"),  # validate run has no gx.result tag
        ("ingest manifest", "UNVERIFIED"),  # no dvc.lock md5 of outputs/ingest recorded
        ("data.dvc md5", "VERIFIED"),
        ("git commit", "UNVERIFIED"),
        ("raw video v0", "VERIFIED"),
    ]
    data = next(x for x in lineage.links if x.name == "data.dvc md5")
    assert data.reason == "listing and 2 objects recomputed from cache"
    assert lineage.links[0].detail["run_id"] == STAGE_IDS["train_stage2"]


def test_walk_reads_dvc_objects_within_the_given_network_limits(
    walk: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hivid.tracking.dvcobjects import NetworkLimits

    seen: list[Any] = []

    class Recording(DvcObjects):
        def __init__(self, root: Path, limits: NetworkLimits | None = None) -> None:
            seen.append(limits)
            super().__init__(root, limits)

    monkeypatch.setattr(audit, "DvcObjects", Recording)
    limits = NetworkLimits(connect_timeout_s=1.0, read_timeout_s=2.0, attempts=1)
    audit.trace(walk["root"], STAGE_IDS["train_stage2"], limits)
    assert seen == [limits]


def test_walk_stage1_by_init_run_and_the_warm_start_link_after_it(walk: dict[str, Any]) -> None:
    stage2 = RunStore.runs[STAGE_IDS["train_stage2"]]
    del stage2.data.tags["upstream.train_stage1.run"]
    stage2.data.tags["init.run"] = STAGE_IDS["train_stage1"]
    RunStore.runs[STAGE_IDS["train_stage1"]].data.tags["warm_start.mode"] = "full"
    got = [x.name for x in audit.trace(walk["root"], STAGE_IDS["train_stage2"]).links]
    assert got[:4] == ["train_stage2 run", "train_stage1 run", "warm start", "build_dataset run"]


def test_walk_stops_where_the_chain_breaks(walk: dict[str, Any]) -> None:
    del RunStore.runs[STAGE_IDS["validate"]]  # recorded, yet gone from the store
    lineage = audit.trace(walk["root"], STAGE_IDS["train_stage2"])
    assert names_and_statuses(lineage) == [
        *((n, "VERIFIED") for n in RUN_LINKS[:3]),
        ("validate run", "MISMATCH"),
        ("data.dvc md5", "UNVERIFIED"),
        ("git commit", "UNVERIFIED"),
    ]
    assert lineage.links[3].reason == f"run {STAGE_IDS['validate']} not in the store"
    assert lineage.links[4].reason == "no dvc.data.md5 tag"


def test_walk_of_a_run_gone_from_the_store(walk: dict[str, Any]) -> None:
    lineage = audit.trace(walk["root"], "run-gone")
    assert names_and_statuses(lineage) == [
        ("train_stage2 run", "MISMATCH"),
        ("data.dvc md5", "UNVERIFIED"),
        ("git commit", "UNVERIFIED"),
    ]


def test_walk_without_upstream_tags_leaves_the_rest_unverified(walk: dict[str, Any]) -> None:
    del RunStore.runs[STAGE_IDS["build_dataset"]].data.tags["upstream.validate.run"]
    RunStore.runs[STAGE_IDS["train_stage2"]].data.tags["dvc.data.md5"] = walk["data_md5"]
    lineage = audit.trace(walk["root"], STAGE_IDS["train_stage2"])
    assert [x for x in lineage.links if x.status == "UNVERIFIED" and x.name.endswith(" run")] == [
        Link(f"{s} run", "UNVERIFIED", "no upstream run recorded") for s in audit.CHAIN[3:]
    ]
    data = next(x for x in lineage.links if x.name == "data.dvc md5")
    # no ingest run: the first run's data md5 (and no manifest, so no video links)
    assert (data.status, data.reason) == ("VERIFIED", "listing and 2 objects recomputed from cache")
    assert not any(x.name.startswith("raw video") for x in lineage.links)


def test_walk_a_single_stage_run(walk: dict[str, Any]) -> None:
    lineage = audit.trace(walk["root"], STAGE_IDS["ingest"])
    got = names_and_statuses(lineage)
    assert got[0] == ("train_stage2 run", "MISMATCH")  # an ingest run is not a training run
    assert got[1:6] == [(n, "UNVERIFIED") for n in RUN_LINKS[1:]]


def test_walk_unreachable_tracking_server(walk: dict[str, Any]) -> None:
    import mlflow

    RunStore.error = mlflow.exceptions.MlflowException("Max retries exceeded with url: /api")
    with pytest.raises(LineageUnavailable) as got:
        audit.trace(walk["root"], "r")
    assert str(got.value) == (
        f"tracking server {audit.tracking_uri(walk['root'])}: unreachable "
        "(Max retries exceeded with url: /api)"
    )
    RunStore.error = KeyError("bug")
    with pytest.raises(KeyError):
        audit.trace(walk["root"], "r")


def test_walk_lineage_errors_pass_through(
    walk: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(ref: str) -> Any:
        raise LineageError(f"{ref}: no such model version")

    monkeypatch.setattr(audit, "resolve_model", missing)
    with pytest.raises(LineageError, match=r"^models:/m/9: no such model version$"):
        audit.trace(walk["root"], "models:/m/9")
