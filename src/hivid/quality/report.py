"""The quality report: one self-contained HTML page rendered from the GX validation results.

GX's Data Docs pages load Bootstrap, jQuery and DataTables from CDNs, so with no network their
index lists no results and the Status column of a validation page is empty. ``report.html`` (next
to ``gate.json``) holds the same facts with inline CSS, no script and no external resource: the
gate's verdict and batch failures, then per suite every expectation with its status written as a
word (PASSED / FAILED), what it checks, the unexpected count and the rows' video ids, then the
quarantined videos and their reasons. It reads in any browser, offline, and as plain text.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPORT = "report.html"

CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:80em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}
table{border-collapse:collapse;width:100%;margin:.5em 0}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}
.PASSED{color:#116611;font-weight:bold}.FAILED{color:#b00020;font-weight:bold}
.verdict{font-size:1.2em;padding:.5em;border:2px solid}
.ok{border-color:#116611}.bad{border-color:#b00020}
code{font-size:.9em}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _expectation_rows(result: Mapping[str, Any]) -> list[str]:
    rows = []
    for r in result.get("results", []):
        cfg = r.get("expectation_config") or {}
        kwargs = cfg.get("kwargs") or {}
        meta = cfg.get("meta") or {}
        res = r.get("result") or {}
        status = "PASSED" if r.get("success") else "FAILED"
        what = cfg.get("description") or meta.get("check") or cfg.get("type", "")
        unexpected = res.get("unexpected_count")
        ids = [
            str(i.get("video_id")) if isinstance(i, Mapping) else str(i)
            for i in (res.get("unexpected_index_list") or [])[:20]
        ]
        exc = (r.get("exception_info") or {}).get("exception_message")
        rows.append(
            "<tr>"
            f'<td class="{status}">{status}</td>'
            f"<td>{_e(what)}</td>"
            f"<td><code>{_e(cfg.get('type', ''))}</code></td>"
            f"<td>{_e(kwargs.get('column', kwargs.get('column_list', '')))}</td>"
            f"<td>{'' if unexpected is None else _e(unexpected)}</td>"
            f"<td>{_e(', '.join(ids))}{_e(' / ' + exc) if exc else ''}</td>"
            "</tr>"
        )
    return rows


def render(gate: Mapping[str, Any], results: Mapping[str, Mapping[str, Any]], title: str) -> str:
    """The report page for ``gate`` (``GateResult.to_dict()``) and its suites' results."""
    ok = bool(gate.get("success"))
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p class='verdict {'ok' if ok else 'bad'}' id='verdict'>Gate: "
        f"<span class='{'PASSED' if ok else 'FAILED'}'>{'PASSED' if ok else 'FAILED'}</span> "
        f"- {len(gate.get('passed', []))} passed, {len(gate.get('quarantined', []))} "
        f"quarantined; result <code>{_e(str(gate.get('result_id', ''))[:16])}</code></p>",
    ]
    if gate.get("batch_failures"):
        parts.append("<h2>Batch failures</h2><ul>")
        parts += [f"<li>{_e(f)}</li>" for f in gate["batch_failures"]]
        parts.append("</ul>")
    parts.append(
        "<h2>Suites</h2><table id='suites'><tr><th>Status</th><th>Suite</th>"
        "<th>Expectations</th><th>Failed</th></tr>"
    )
    for name, res in sorted(results.items()):
        stats = res.get("statistics") or {}
        status = "PASSED" if res.get("success") else "FAILED"
        parts.append(
            f"<tr><td class='{status}'>{status}</td><td><a href='#{_e(name)}'>{_e(name)}</a></td>"
            f"<td>{_e(stats.get('evaluated_expectations', ''))}</td>"
            f"<td>{_e(stats.get('unsuccessful_expectations', ''))}</td></tr>"
        )
    parts.append("</table>")
    for name, res in sorted(results.items()):
        parts.append(
            f"<h2 id='{_e(name)}'>{_e(name)}</h2><table class='expectations'><tr><th>Status</th>"
            "<th>Check</th><th>Expectation</th><th>Column</th><th>Unexpected</th>"
            "<th>Rows (video ids)</th></tr>"
        )
        parts += _expectation_rows(res)
        parts.append("</table>")
    quarantined = gate.get("quarantined") or []
    if quarantined:
        parts.append(
            "<h2>Quarantined</h2><table id='quarantined'><tr><th>Video</th><th>Reasons</th></tr>"
        )
        for q in quarantined:
            reasons = "<br>".join(_e(r) for r in q.get("reasons", []))
            parts.append(f"<tr><td>{_e(q.get('video_id'))}</td><td>{reasons}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(out_dir: Path, gate: Mapping[str, Any], results_dir: Path, title: str) -> Path:
    """Write ``out_dir/report.html`` from ``gate`` and every ``results_dir/*.json``."""
    results = {
        p.stem: json.loads(p.read_text(encoding="utf-8"))
        for p in sorted(Path(results_dir).glob("*.json"))
    }
    path = Path(out_dir) / REPORT
    path.write_text(render(gate, results, title), encoding="utf-8")
    return path
