"""`hivid store ...`: maintain the embedded MLflow store."""

from __future__ import annotations

import click

from hivid.cli.common import guard, project_root


@click.group("store")
def store_group() -> None:
    """Maintain the embedded MLflow store (mlruns/)."""


@store_group.command("relocate")
def store_relocate() -> None:
    """Point the embedded store's artifact URIs at this checkout's mlruns/artifacts.

    MLflow records absolute file:// URIs; after moving the checkout every `hivid` command heals
    them (when the old location is gone); run this after copying a checkout whose original stays.
    """
    from hivid.tracking.runs import is_embedded, tracking_uri
    from hivid.tracking.store import relocate_store, sqlite_path

    def go() -> dict:
        uri = tracking_uri(project_root())
        db = sqlite_path(uri)
        if db is None or not is_embedded(uri):
            raise click.UsageError(f"{uri}: not an embedded sqlite store (nothing to relocate)")
        if not db.is_file():
            raise FileNotFoundError(f"{db}: no MLflow store here")
        r = relocate_store(db)
        return {"old": r.old_root, "new": r.new_root, "changed": r.changed, "total": r.total}

    r = guard("store relocate", go)
    if r["total"]:
        detail = ", ".join(f"{k} {v}" for k, v in sorted(r["changed"].items()))
        click.echo(f"rewrote {r['total']} URI(s) from {r['old']} to {r['new']} ({detail})")
    else:
        click.echo(f"store already points at {r['new']}")
