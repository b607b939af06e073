"""Helpers every gate's tables share: defensive coercion of JSON values and fixed-dtype frames.

Values are coerced defensively: a time that is not a real number (a string, ``None``, a bool)
becomes NaN, text that is not a string becomes ``None``; the suites then report them as missing.
Every table has a fixed column set and dtype (its ``*_COLUMNS``), also when it is empty, so a
suite never fails on a missing column; ``row`` is the positional index, so a GX unexpected-index
entry maps back to the full row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

FLOAT = "float64"
OBJ = "object"
BOOL = "bool"
INT = "int64"


def num(x: Any) -> float:
    """``x`` as a float when it is a JSON number (not a bool), else NaN."""
    if isinstance(x, bool) or not isinstance(x, int | float | np.integer | np.floating):
        return math.nan
    return float(x)


def text(x: Any) -> str | None:
    """``x`` when it is a string, else None (the suites report None as missing text)."""
    return x if isinstance(x, str) else None


def json_type(x: Any, present: bool = True) -> str:
    """JSON type name of a value: missing, null, bool, number, str, object, array, or the class."""
    if not present:
        return "missing"
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "bool"
    if isinstance(x, int | float):
        return "number"
    if isinstance(x, str):
        return "str"
    if isinstance(x, Mapping):
        return "object"
    if isinstance(x, list | tuple):
        return "array"
    return type(x).__name__


def nonfinite_paths(obj: Any, limit: int = 3, _path: str = "") -> list[str]:
    """JSON paths of NaN / +-inf numbers inside ``obj`` (``chapters[1].start=nan``), at most
    ``limit`` of them. ``json.load`` accepts the ``NaN``/``Infinity`` tokens, so a record can
    carry them silently; every number a later stage trains on must be finite."""
    out: list[str] = []

    def walk(x: Any, path: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(x, float | np.floating) and not math.isfinite(float(x)):
            out.append(f"{path or '<root>'}={float(x)}")
        elif isinstance(x, Mapping):
            for k in sorted(x, key=str):
                walk(x[k], f"{path}.{k}" if path else str(k))
        elif isinstance(x, list | tuple):
            for i, v in enumerate(x):
                walk(v, f"{path}[{i}]")

    walk(obj, _path)
    return out


def _nonfinite(obj: Any) -> str | None:
    paths = nonfinite_paths(obj)
    return ", ".join(paths) if paths else None


def _frame(rows: list[dict[str, Any]], columns: Mapping[str, str]) -> pd.DataFrame:
    """DataFrame with exactly ``columns`` (in order, with their dtypes) and a RangeIndex.

    Columns are built one by one with an explicit dtype: pandas 3 would otherwise infer its
    ``str`` dtype for text and turn None into NaN; text columns stay ``object`` holding None.
    """
    for i, r in enumerate(rows):
        r["row"] = i
    return pd.DataFrame(
        {c: pd.Series([r.get(c) for r in rows], dtype=d) for c, d in columns.items()},
        index=pd.RangeIndex(len(rows)),
    )


def _prev(values: list[float]) -> list[float]:
    return [math.nan, *values[:-1]] if values else []


def _words(s: str | None) -> float:
    return float(len(s.split())) if s is not None else math.nan


def _chars(s: str | None) -> float:
    return float(len(s.strip())) if s is not None else math.nan


def _stripped(s: str | None) -> str | None:
    return s.strip() if s is not None else None


def _list_at(record: Mapping[str, Any], *path: str) -> list[Any]:
    """``record[path[0]][path[1]]...`` when that is a list, else [] (shape errors are reported by
    ``structure_errors``)."""
    cur: Any = record
    for key in path:
        if not isinstance(cur, Mapping):
            return []
        cur = cur.get(key)
    return cur if isinstance(cur, list) else []


def _pair(x: Any) -> tuple[float, float, str | None]:
    """(start, end, shape error) of a ``[s, e]`` timestamp."""
    if not isinstance(x, list | tuple) or len(x) != 2:
        return math.nan, math.nan, f"timestamp {x!r} is not a [start, end] pair"
    return num(x[0]), num(x[1]), None
