"""What ingest must do with each file of the fault corpus (``hivid demo-data --faults``).

Written here, apart from the generator (``hivid.data.faults``), so that a change to a reason or
an outcome in ``src/`` has to be matched by a change of the expectation: the tests never read
what they check from the code under test. Values are regular expressions the one-line reason
must contain (after the ``videos/<name>: `` prefix); PyAV's own wording and hash prefixes are
left open.
"""

from __future__ import annotations

import re

QUARANTINED: dict[str, str] = {
    "fault_zero_bytes.mp4": r"^empty file \(0 bytes\)$",
    "fault_truncated.mp4": r"^not a readable media container \(",
    "fault_truncated_tail.mp4": r"^truncated: \d+ of the \d+ video frames the header lists are in",
    "fault_random_bytes.mp4": r"^not a readable media container \(",
    "fault_audio_only.mp4": r"^audio-only file \(no video stream\)$",
    "fault_zero_duration.mp4": r"^zero duration \(0 s in the header\)$",
    "fault_huge_frame.mp4": (
        r"^frame 7680x4320 \(33177600 px\) exceeds max_pixels 8294400; not decoded$"
    ),
    "fault_duplicate.mp4": r"^same content as [A-Za-z0-9_.-]+ \(sha256 [0-9a-f]{12}\)$",
    "fault_meta_not_utf8.mp4": (
        r"^metadata/fault_meta_not_utf8\.json: metadata is not UTF-8 \(byte \d+\)$"
    ),
    "fault_meta_not_json.mp4": r"^metadata/fault_meta_not_json\.json: metadata is not JSON \(",
    "fault_meta_missing_fields.mp4": (
        r"^metadata/fault_meta_missing_fields\.json: 'brand' missing or not a non-empty string; "
        r"'attributes' missing or not an object; 'price\.amount' missing or not a non-negative "
        r"number$"
    ),
    "fault_meta_wrong_id.mp4": (
        r"^metadata/fault_meta_wrong_id\.json names video_id '\.\./\.\./x', "
        r"not 'fault_meta_wrong_id'"
    ),
    "x..%2F..%2Fescape.mp4": r"^invalid video id 'x\.\.%2F\.\.%2Fescape' \(",
    "fault_link_escape.mp4": r"^resolves outside the videos/ directory",
}
"""File name under ``videos/`` -> regular expression its quarantine reason must match."""

ACCEPTED: dict[str, dict[str, object]] = {
    "fault_no_audio.mp4": {"has_audio": False, "variable_frame_rate": False},
    "fault_vfr.mp4": {"has_audio": True, "variable_frame_rate": True},
}
"""Odd but valid files that must reach the manifest, with the fields that record the oddity."""

ALL = {**QUARANTINED, **ACCEPTED}


def reason_matches(name: str, reason: str) -> bool:
    """``reason`` is the one line ingest wrote for ``videos/<name>``, and says what it must."""
    prefix = f"videos/{name}: "
    return (
        reason.startswith(prefix)
        and "\n" not in reason
        and re.search(QUARANTINED[name], reason.removeprefix(prefix)) is not None
    )


def unanchored(name: str) -> str:
    """The reason pattern of ``name`` for finding it inside a longer line (a report row)."""
    return QUARANTINED[name].removeprefix("^").removesuffix("$")
