"""The embedded MLflow store is relocatable: moving (or copying) the checkout keeps it working.

MLflow records absolute artifact URIs (``file:///<checkout>/mlruns/artifacts/...``) in its sqlite
database: on the experiment, every run, every logged model and every registered version. After the
checkout moves, those point at a directory that no longer exists, so artifacts (checkpoints, gate
results) can no longer be read and lineage links turn UNVERIFIED.

The rule here: the artifacts of an embedded store live beside its database
(``<dir of mlflow.db>/artifacts``). ``relocate_store`` rewrites every recorded URI under another
artifact root to that one (and input-dataset sources under the old checkout to the new one), in
one transaction. ``configure()`` runs it whenever the experiment's recorded root differs from the
expected one, so a moved checkout heals on its next `hivid` command; `hivid store relocate` does
it on demand and reports what it changed. Only the stdlib ``sqlite3`` is used, never a server
store.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

ARTIFACTS = "artifacts"
SUFFIX = "/mlruns/artifacts"

# (table, column) pairs holding artifact URIs, where the table exists in this MLflow version
URI_COLUMNS: tuple[tuple[str, str], ...] = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
)
# input-dataset sources are JSON holding file:// URIs of the checkout's data and outputs
ROOT_COLUMNS: tuple[tuple[str, str], ...] = (("datasets", "dataset_source"),)


@dataclass
class Relocation:
    """What ``relocate_store`` did."""

    db: str
    old_root: str | None
    new_root: str
    changed: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.changed.values())


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for any other store)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(unquote(uri[len("sqlite:///") :]))


def expected_root(db: Path) -> Path:
    return (db.parent / ARTIFACTS).resolve()


def _as_path(uri: str) -> str:
    """``file:///x/y`` or ``/x/y`` -> ``/x/y``."""
    return unquote(urlparse(uri).path) if uri.startswith("file:") else uri


def recorded_roots(conn: sqlite3.Connection) -> list[str]:
    """Distinct artifact roots (paths ending in ``/mlruns/artifacts``) the experiments record."""
    rows = conn.execute("SELECT artifact_location FROM experiments").fetchall()
    roots = []
    for (loc,) in rows:
        if not isinstance(loc, str):
            continue
        path = _as_path(loc).rstrip("/")
        if path.endswith(SUFFIX) and path not in roots:
            roots.append(path)
    return roots


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _rewrite(conn: sqlite3.Connection, table: str, column: str, old: str, new: str) -> int:
    """Replace the prefix ``old`` by ``new`` in ``table.column`` (plain and file:// forms)."""
    n = 0
    for o, w in ((Path(old).as_uri(), Path(new).as_uri()), (old, new)):
        cur = conn.execute(
            f"UPDATE {table} SET {column} = REPLACE({column}, ?, ?) WHERE instr({column}, ?) > 0",
            (o + "/", w + "/", o + "/"),
        )
        n += cur.rowcount
        cur = conn.execute(
            f"UPDATE {table} SET {column} = ? WHERE {column} = ?",
            (w, o),
        )
        n += cur.rowcount
    return n


def relocate_store(db: Path, new_root: Path | None = None) -> Relocation:
    """Point every artifact URI of the sqlite store ``db`` at ``new_root`` (default: the
    ``artifacts/`` directory beside ``db``); idempotent."""
    new = str((new_root or expected_root(db)).resolve())
    result = Relocation(db=str(db), old_root=None, new_root=new)
    if not db.is_file():
        return result
    conn = sqlite3.connect(str(db), timeout=60)
    try:
        tables = _tables(conn)
        if "experiments" not in tables:
            return result
        olds = [r for r in recorded_roots(conn) if r != new]
        if not olds:
            return result
        result.old_root = olds[0]
        with conn:  # one transaction: all or nothing
            for old in olds:
                for table, column in URI_COLUMNS:
                    if table in tables:
                        n = _rewrite(conn, table, column, old, new)
                        if n:
                            key = f"{table}.{column}"
                            result.changed[key] = result.changed.get(key, 0) + n
                old_checkout = old[: -len(SUFFIX)]
                new_checkout = new[: -len(SUFFIX)] if new.endswith(SUFFIX) else None
                if new_checkout:
                    for table, column in ROOT_COLUMNS:
                        if table in tables:
                            n = _rewrite(conn, table, column, old_checkout, new_checkout)
                            if n:
                                key = f"{table}.{column}"
                                result.changed[key] = result.changed.get(key, 0) + n
    finally:
        conn.close()
    return result


def needs_relocation(db: Path) -> bool:
    """True when the store was moved: it records an artifact root that no longer exists while
    the one beside ``db`` does (one cheap query; False for a missing or foreign database, and
    for a copy whose original is still in place)."""
    new = expected_root(db)
    if not db.is_file() or not new.is_dir():
        return False
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            if "experiments" not in _tables(conn):
                return False
            return any(r != str(new) and not Path(r).exists() for r in recorded_roots(conn))
        finally:
            conn.close()
    except sqlite3.Error:
        return False


def heal_moved_store(uri: str, log: Callable[[str], None] | None = None) -> Relocation | None:
    """Relocate the sqlite store of ``uri`` when it was moved (see ``needs_relocation``); called
    by ``configure()``, so every `hivid` command on a moved checkout finds its artifacts."""
    db = sqlite_path(uri)
    if db is None or not needs_relocation(db):
        return None
    result = relocate_store(db)
    if result.total:
        (log or _stderr)(
            f"hivid: the MLflow store moved: {result.total} artifact URI(s) rewritten from "
            f"{result.old_root} to {result.new_root}"
        )
    return result


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)
