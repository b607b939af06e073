"""What every gate's suites are made of: ``Check``, ``Suite``, the wording helpers and the checks
shared by time intervals (ASR segments, TCoT items, chapters, evaluation events).

Every expectation is wrapped in a ``Check``: a stable name (stored in the expectation's
``meta["check"]``, which is how a GX result maps back to its check), the GX expectation itself,
and ``explain``, which turns the rows that failed for one video into a sentence a person can act
on. A ``batch`` check guards the batch as a whole (duplicate ids or hashes, an empty stage): its
failure stops the pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from hivid.quality.config import QualityConfig

SAFE_ID_REGEX = r"^[A-Za-z0-9](?:[A-Za-z0-9_-]|\.(?!\.)){0,127}$"
"""A video id that is one safe path component (same rule as ``hivid.data.ingest``)."""

# The import of great_expectations costs seconds: callers that only need the config
# (`hivid config check`) import this module without paying for it (see ``_gx``).


Explain = Callable[[pd.DataFrame, Any], str]
"""(failed rows of one video, or of the batch for a batch check; the GX ``observed_value``) ->
the reason, without the video id and suite prefix."""


@dataclass(frozen=True)
class Check:
    """One expectation with its stable name and its explanation of a failure."""

    name: str
    """Stable id inside its suite, e.g. ``contiguous``; stored in ``meta["check"]``."""
    expectation: Any
    """A ``great_expectations.expectations.Expectation`` instance."""
    explain: Explain
    """Turns the failing rows of one video into a readable reason."""
    batch: bool = False
    """A failure stops the pipeline (besides quarantining the videos involved, if any)."""


@dataclass(frozen=True)
class Suite:
    """A named, versioned list of checks over one table of ``hivid.quality.tables``."""

    name: str
    """``hivid.<table>.v<version>``."""
    table: str
    """Key of ``hivid.quality.tables.TABLES``."""
    version: int
    checks: tuple[Check, ...] = field(default_factory=tuple)

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"{self.name}: no check named {name!r}")

    def expectation_suite(self) -> Any:
        """A fresh ``gx.ExpectationSuite`` (not yet added to a context)."""
        gx = _gx()
        for c in self.checks:
            c.expectation.meta = {**(c.expectation.meta or {}), "check": c.name, "batch": c.batch}
        return gx.ExpectationSuite(
            name=self.name,
            expectations=[c.expectation for c in self.checks],
            meta={"version": self.version, "table": self.table, "owner": "hivid.quality"},
        )


def _gx() -> Any:
    import great_expectations as gx

    return gx


# ---------------------------------------------------------------------------------------------
# Wording helpers: reasons name the item (1-based position) and the offending values.


def s(x: Any) -> str:
    """Seconds for a reason: ``12.3 s``, or ``missing`` for NaN/None."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "missing"
    return "missing" if math.isnan(v) else f"{v:g} s"


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def positions(rows: pd.DataFrame, noun: str, limit: int = 5) -> str:
    """``chapter 3`` / ``chapters 1, 4`` / ``segments 1, 2, 3, 4, 5 (+2 more)``."""
    pos = [int(p) for p in rows["pos"]]
    head = ", ".join(str(p) for p in pos[:limit])
    more = f" (+{len(pos) - limit} more)" if len(pos) > limit else ""
    return f"{noun if len(pos) == 1 else noun + 's'} {head}{more}"


def _first(rows: pd.DataFrame) -> pd.Series:
    return rows.iloc[0]


def fixed(message: str) -> Explain:
    """An explanation that does not depend on the rows."""
    return lambda rows, observed: message


def first_value(column: str, template: str) -> Explain:
    """``template.format(v=<column of the first failing row>)``."""
    return lambda rows, observed: template.format(v=_first(rows)[column])


def _ids(rows: pd.DataFrame, column: str) -> str:
    groups = rows.groupby(column, sort=True)["video_id"].apply(lambda v: ", ".join(map(str, v)))
    return "; ".join(f"{str(k)[:12]} shared by {v}" for k, v in groups.items())


# ---------------------------------------------------------------------------------------------
# Checks of time intervals: the GX wiring lives here once; a gate may word a check its own way
# (``description`` / ``explain``) without respelling the expectation.


def reason_at(noun: str, reason: str) -> Explain:
    """An explanation ``<noun>s 1, 3: <reason>`` naming the failing items."""
    return lambda r, _: f"{positions(r, noun)}: {reason}"


def start_present(
    E: Any,
    noun: str,
    *,
    name: str = "start_present",
    description: str | None = None,
    explain: Explain | None = None,
) -> Check:
    """``start`` is a number (not NaN)."""
    return Check(
        name,
        E.ExpectColumnValuesToNotBeNull(
            column="start", description=description or f"{noun} start is a number"
        ),
        explain or reason_at(noun, "start time is missing or not a number (NaN)"),
    )


def end_present(
    E: Any, noun: str, *, description: str | None = None, explain: Explain | None = None
) -> Check:
    """``end`` is a number (not NaN)."""
    return Check(
        "end_present",
        E.ExpectColumnValuesToNotBeNull(
            column="end", description=description or f"{noun} end is a number"
        ),
        explain or reason_at(noun, "end time is missing or not a number (NaN)"),
    )


def start_before_end(
    E: Any,
    noun: str,
    strict: bool,
    *,
    description: str | None = None,
    explain: Explain | None = None,
) -> Check:
    """``start < end`` (``strict``) or ``start <= end``; rows missing either are left to the
    ``*_present`` checks."""

    def default(r: pd.DataFrame, _: Any) -> str:
        return "; ".join(
            f"{noun} {int(x.pos)} ends at {s(x.end)}, not after its start {s(x.start)}"
            for x in r.head(3).itertuples()
        ) + (f" (+{len(r) - 3} more)" if len(r) > 3 else "")

    return Check(
        "start_before_end",
        E.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="end",
            column_B="start",
            or_equal=not strict,
            ignore_row_if="either_value_is_missing",
            description=description or f"{noun} start {'<' if strict else '<='} end",
        ),
        explain or default,
    )


def start_nonnegative(
    E: Any, noun: str, *, description: str | None = None, explain: Explain | None = None
) -> Check:
    """``start >= 0`` (an infinite start fails too)."""
    return Check(
        "start_nonnegative",
        E.ExpectColumnValuesToBeBetween(
            column="start", min_value=0, description=description or f"{noun} start >= 0"
        ),
        explain or (lambda r, _: f"{positions(r, noun)} start before 0 s or at an infinite time"),
    )


def inside_video(
    E: Any,
    noun: str,
    tol: float,
    *,
    description: str | None = None,
    explain: Explain | None = None,
) -> Check:
    """``overrun`` (end - duration) <= ``tol``."""

    def default(r: pd.DataFrame, _: Any) -> str:
        return (
            f"{count(len(r), noun)} {'ends' if len(r) == 1 else 'end'} after the video "
            f"(duration "
            f"{s(_first(r)['duration'])}; latest end {s(r['end'].max())})"
        )

    return Check(
        "inside_video",
        E.ExpectColumnValuesToBeBetween(
            column="overrun",
            max_value=tol,
            description=description or f"{noun} ends at most {tol} s after the video",
        ),
        explain or default,
    )


def text_present(E: Any, noun: str, column: str, *, description: str | None = None) -> Check:
    """``column`` holds a string (the tables turn non-text into None)."""
    return Check(
        f"{column}_present",
        E.ExpectColumnValuesToNotBeNull(
            column=column, description=description or f"{noun} {column} is a string"
        ),
        reason_at(noun, f"{column} is missing or not text"),
    )


def text_nonempty(E: Any, noun: str, column: str, *, description: str | None = None) -> Check:
    """``column`` is not blank (the tables strip text)."""
    return Check(
        f"{column}_nonempty",
        E.ExpectColumnValueLengthsToBeBetween(
            column=column, min_value=1, description=description or f"{noun} {column} is not blank"
        ),
        reason_at(noun, f"{column} is empty"),
    )


def _interval_checks(
    E: Any, cfg: QualityConfig, noun: str, strict: bool, text_col: str | None
) -> list[Check]:
    """Checks shared by time intervals (ASR segments, TCoT items, chapters)."""
    checks = [
        start_present(E, noun),
        end_present(E, noun),
        start_before_end(E, noun, strict),
        start_nonnegative(E, noun),
        inside_video(E, noun, cfg.time_tolerance_s),
    ]
    if text_col is not None:
        checks += [text_present(E, noun, text_col), text_nonempty(E, noun, text_col)]
    return checks


def _monotonic(E: Any, noun: str) -> Check:
    return Check(
        "monotonic_starts",
        E.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="start",
            column_B="prev_start",
            or_equal=True,
            ignore_row_if="either_value_is_missing",
            description=f"{noun}s are in time order (start >= previous start)",
        ),
        lambda r, _: (
            "; ".join(
                f"{noun} {int(x.pos)} starts at {s(x.start)}, before {noun} {int(x.pos) - 1} "
                f"({s(x.prev_start)})"
                for x in r.head(3).itertuples()
            )
            + (f" (+{len(r) - 3} more)" if len(r) > 3 else "")
        ),
    )
