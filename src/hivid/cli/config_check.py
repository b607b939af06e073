"""`hivid config ...`: inspect and validate params.yaml."""

from __future__ import annotations

from pathlib import Path

import click

from hivid.cli.common import echo_json, guard, params_option


@click.group("config")
def config_group() -> None:
    """Inspect and validate params.yaml."""


@config_group.command("check")
@params_option
def config_check(params: Path) -> None:
    """Validate every section of the params file (unknown keys and bad values fail)."""
    from hivid.config import check_all
    from hivid.configbase import to_dict

    cfgs = guard("config check", lambda: check_all(params))
    echo_json({k: to_dict(v) for k, v in cfgs.items()})
