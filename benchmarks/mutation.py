"""Mutation scores of the modules that carry the platform's promises (mutmut 3, pinned in the lock).

    make mutation                                              # all eight modules (hours)
    .venv/bin/python benchmarks/mutation.py evaluation/soda.py # one module (or several)
    .venv/bin/python benchmarks/mutation.py --list             # modules and their fast tests
    .venv/bin/python benchmarks/mutation.py --report           # last scores, nothing run
    .venv/bin/python benchmarks/mutation.py --survivors MODULE # re-test what the last run left
    .venv/bin/python benchmarks/mutation.py --timeout 1800 MODULE  # then, later:
    .venv/bin/python benchmarks/mutation.py --unchecked MODULE # the mutants not checked yet

mutmut changes one operator, constant or call at a time in a copy of the module (a "mutant") and
runs the module's fast tests against it: a mutant the tests notice is *killed*, one they don't is
*survived*. The score per module is killed / (total - equivalent): an equivalent mutant behaves
exactly like the original (no test can kill it) and is listed, with the reason, in ``EQUIVALENT``
below; every other survivor is a gap in the tests. Mutants no fast test reaches count as not
killed.

Each module runs in its own work directory ``.cache/mutation/<module>/`` (links to src/, tests/,
flows/ and the repository files the tests read, plus a ``pyproject.toml`` holding this module's
``[tool.mutmut]`` settings: the shared ones from the project's ``pyproject.toml`` with
``only_mutate`` and the test selection filled in), always from scratch, so a run never reuses
another module's or an older run's results. Scores go to ``.cache/mutation/scores.json``
(merged over runs, one entry per module, with the date and the git commit) and are printed as a
table. A partial run (``--functions``, stopped by ``--timeout``, ``--unchecked``) on the same
source updates the mutants it checked in the module's stored result, so one module score can be
made of several runs: it is always over every mutant of the module (those no run checked count
as "not checked", not killed) and its ``parts`` list the runs. Not part of CI (``make test``):
a module takes minutes (soda) to an hour or more (audit, dense, ingest) on two shared cores,
mostly mutmut's per-mutant pytest start (~5 s each there). Mutant names
(``hivid.x.y.x_func__mutmut_N``) follow the source, so an ``EQUIVALENT`` entry must be
re-checked when its function changes (``mutmut show NAME`` in the module's work directory prints
the diff).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".cache" / "mutation"
SCORES = WORK / "scores.json"

# module (under src/hivid) -> the fast tests that carry its promises (globs; slow ones deselected)
# test_audit_units.py checks each link alone (seconds), test_audit.py the whole local chain.
# Left out (`--tests` adds them): test_audit_s3.py re-runs the chain's checks with the objects in
# an S3 bucket (a SeaweedFS server per mutant run, ~40 s per surviving mutant; it runs under
# mutmut since its fixture drops boto3's cached credentials), and its S3 code is dvcobjects.py,
# not a module scored here; test_warmstart.py's registry round trip trains narrators (minutes
# per surviving mutant), the warm-start link's outcomes are in the two kept.
AUDIT_TESTS = [
    "tests/unit/test_audit.py",
    "tests/unit/test_audit_units.py",
    "tests/unit/test_lineage*.py",
]
MODULES: dict[str, list[str]] = {
    "tracking/audit.py": AUDIT_TESTS,
    "tracking/audit_links.py": AUDIT_TESTS,  # the chain's vocabulary, split out of audit.py
    "tracking/audit_model.py": AUDIT_TESTS,  # its model-end checks, split out of audit.py
    "tracking/promotion.py": ["tests/unit/test_promotion*.py"],
    # the plan and records, and the 0-step stages (warm_model, keep_weights, keep_champion) on
    # tiny narrators built by test_warmstart_keep.py; test_warmstart.py's training tests take
    # minutes per surviving mutant: `--tests tests/unit/test_warmstart*.py` to include them
    "training/warmstart.py": [
        "tests/unit/test_warmstart_plan.py",
        "tests/unit/test_warmstart_keep.py",
        *(
            f"tests/unit/test_warmstart.py::{t}"
            for t in (
                "test_plan_full_without_champion_or_when_disabled",
                "test_plan_warm_scales_steps_to_the_new_share",
                "test_warm_steps_floor_and_cap",
                "test_plan_falls_back_to_full",
                "test_config_validation",
                "test_model_config_hash_ignores_the_compressor_switch",
                "test_split_hashes_strict_and_lenient",
            )
        ),
    ],
    # test_ingest_robust.py and test_ingest_fuzz.py reach the prober only through ingest (and
    # the former's `hivid ingest` CLI test failed in mutmut's stats run here: not investigated)
    "data/probe.py": [
        "tests/unit/test_probe*.py",
        "tests/unit/test_ingest.py",
        "tests/unit/test_bad_input.py",
        "tests/unit/test_fuzz_probe.py",
    ],
    # test_ingest_robust.py's `hivid ingest` CLI test is left out: it failed in mutmut's stats
    # run (the CLI child gets the test's sys.path, mutmut's mutants folder included)
    "data/ingest.py": [
        "tests/unit/test_ingest.py",
        "tests/unit/test_ingest_exact.py",
        "tests/unit/test_ingest_rows.py",
        "tests/unit/test_ingest_previous.py",  # the CLI test's previous_manifest, function level
        "tests/unit/test_ingest_fuzz.py",
        *(
            f"tests/unit/test_ingest_robust.py::{t}"
            for t in (
                "test_bad_metadata_costs_one_item",
                "test_oversized_metadata_is_rejected_without_reading_it",
                "test_directories_in_place_of_files_get_rows_with_ids",
                "test_duplicate_keeps_the_copy_the_previous_manifest_listed",
                "test_duplicate_id_keeps_the_older_file",
            )
        ),
        "tests/unit/test_bad_input.py",
        "tests/unit/test_fuzz_probe.py",
        "tests/unit/test_validators_hypothesis.py",
    ],
    "quality/gate.py": [
        "tests/unit/test_quality_gate*.py",
        "tests/unit/test_quality_more.py",
        "tests/unit/test_dataset_splits.py",
    ],
    # every test that scores language metrics starts the METEOR JVM (~5-15 s per mutant run);
    # test_eval_dense.py's live reference (75 s: the reference code itself) and CLI (20 s) tests
    # are left out, its stored-reference-numbers tests kept
    "evaluation/dense.py": [
        "tests/unit/test_dense.py",
        "tests/unit/test_dense_exact.py",
        "tests/unit/test_dense_files.py",  # evaluate_files and evaluator_identity (2 JVM runs)
        "tests/unit/test_dense_best_file.py",
        "tests/unit/test_soda.py",
        *(
            f"tests/unit/test_eval_dense.py::{t}"
            for t in (
                "test_tiou_matrix_equals_reference_formula",
                "test_vectorised_dp_equals_recursive_reference",
                "test_edge_cases_are_reported",
                "test_fixture_equals_reference_numbers",
                "test_chinese_scores_where_the_reference_gives_zero",
                "test_two_reference_files_equal_reference_numbers",
            )
        ),
    ],
    # the METEOR-jar tests of test_eval_dense.py add minutes per surviving mutant and reach
    # soda.py only through dense.py: its own pure tests carry it
    "evaluation/soda.py": [
        "tests/unit/test_soda.py",
        "tests/unit/test_dense.py",
        "tests/unit/test_eval_dense.py::test_tiou_matrix_equals_reference_formula",
        "tests/unit/test_eval_dense.py::test_vectorised_dp_equals_recursive_reference",
        "tests/unit/test_eval_dense.py::test_edge_cases_are_reported",
    ],
}

# Survivors judged equivalent (no input can tell them from the original), with the reason.
EQUIVALENT: dict[str, str] = {
    "hivid.evaluation.soda.x_video_soda__mutmut_10": (
        "np.where(None, 0.0, iou): negative tIoU no longer clamped; max_alignment never takes a "
        "negative weight (skipping a cell is always at least as good), so the result is the same"
    ),
    "hivid.evaluation.soda.x_video_soda__mutmut_16": (
        "iou <= 0.0 instead of iou < 0.0: also maps tIoU 0 to 0"
    ),
    "hivid.training.warmstart.x_plan_warm_start__mutmut_4": (
        "the initial plan's reason None instead of '': every return path sets the reason"
    ),
    "hivid.training.warmstart.x_plan_warm_start__mutmut_15": (
        "the initial plan's reason 'XXXX' instead of '': every return path sets the reason"
    ),
    "hivid.training.warmstart.x_warm_steps__mutmut_11": (
        "min(2.0, ...) instead of min(1.0, ...): the result is capped at max_steps right after"
    ),
    "hivid.training.warmstart.x_read_plan__mutmut_8": (
        "encoding=None: the locale's encoding, UTF-8 on every host we run (C.UTF-8)"
    ),
    "hivid.training.warmstart.x_read_plan__mutmut_10": "'UTF-8' is the same codec as 'utf-8'",
    "hivid.training.warmstart.x_split_videos_with_hashes__mutmut_6": (
        "encoding=None: the locale's encoding, UTF-8 on every host we run (C.UTF-8)"
    ),
    "hivid.training.warmstart.x_split_videos_with_hashes__mutmut_8": (
        "'UTF-8' is the same codec as 'utf-8'"
    ),
    **{
        f"hivid.data.probe.x\u01c1ProbeWorker\u01c1_start__mutmut_{n}": (
            "the pipe's buffering (bufsize 1, 2 or the default): every request and reply is "
            "flushed explicitly"
        )
        for n in (7, 13, 19)
    },
    **{
        f"hivid.data.probe.x\u01c1ProbeWorker\u01c1_kill__mutmut_{n}": (
            "proc.wait(10 / 11 / None) right after SIGKILL (or exit): it returns at once"
        )
        for n in (4, 5)
    },
    "hivid.data.probe.x\u01c1ProbeWorker\u01c1_readline__mutmut_1": (
        "assert ... or ...: stdout is always a pipe (Popen stdout=PIPE), the assert never fails"
    ),
    "hivid.data.probe.x\u01c1ProbeWorker\u01c1probe__mutmut_5": (
        "assert ... or ...: stdin is always a pipe (Popen stdin=PIPE), the assert never fails"
    ),
    "hivid.data.probe.x_frame_intervals__mutmut_6": (
        "b >= a instead of b > a: the times are sorted and de-duplicated, so b > a always holds"
    ),
    "hivid.quality.gate.x__failed_rows__mutmut_9": (
        "df.loc[[]] when no row is flagged: the same empty frame as df.iloc[0:0]"
    ),
    "hivid.quality.gate.x__failed_rows__mutmut_12": "df.iloc[1:0] is as empty as df.iloc[0:0]",
    **{
        f"hivid.quality.gate.x__interpret__mutmut_{n}": (
            "groupby(sort=True/False/None): only orders the keys of findings.reasons, which both "
            "gates read in sorted order (each video's own reasons keep the results' order)"
        )
        for n in (75, 77, 80)
    },
    "hivid.data.ingest.x__int_digits__mutmut_2": (
        "the 'or 4300' fallback is for a disabled limit (0), where no integer is ever refused"
    ),
    "hivid.data.ingest.x__manifest_rows__mutmut_4": "bytes.decode() defaults to UTF-8",
    "hivid.data.ingest.x__one_line__mutmut_2": (
        "always ' '.join(text.split('\\n')): a text without a newline comes back unchanged"
    ),
    "hivid.data.ingest.x_load_metadata__mutmut_27": "'UTF-8' is the same codec as 'utf-8'",
    **{
        f"hivid.data.ingest.x_load_metadata__mutmut_{n}": (
            "meta.get(key, default).strip(): only reached when meta[key] is a str, so the "
            "default is never used"
        )
        for n in (56, 58, 59)
    },
    "hivid.data.ingest.x__metadata_value_problem__mutmut_32": (
        "'UTF-8' is the same codec as 'utf-8'"
    ),
    "hivid.data.ingest.x__processing_order__mutmut_21": (
        "files the previous manifest did not list sort in group 2 instead of 1: still after "
        "the listed ones (group 0), in the same order among themselves"
    ),
    "hivid.data.ingest.x__manifest_rows__mutmut_7": "'UTF-8' is the same codec as 'utf-8'",
    "hivid.data.ingest.x_read_manifest__mutmut_8": (
        "encoding=None: the locale's encoding, UTF-8 on every host we run (C.UTF-8)"
    ),
    "hivid.data.ingest.x_read_manifest__mutmut_10": "'UTF-8' is the same codec as 'utf-8'",
    **{
        f"hivid.evaluation.dense.x_dense_scores__mutmut_{n}": (
            "np.asarray(timestamps) without dtype=float: check_inputs admits only finite "
            "numbers, and tiou_matrix gives the same floats from an int array"
        )
        for n in (84, 86, 97, 99)
    },
    **{
        f"hivid.evaluation.dense.x__soda_matrices__mutmut_{n}": (
            "np.asarray(timestamps) without dtype=float: the same tIoU floats from numbers"
        )
        for n in (36, 38, 56, 58)
    },
    **{
        f"hivid.evaluation.dense.x__soda_finish__mutmut_{n}": (
            "np.asarray(scores) without dtype=float: the METEOR scores are floats already"
        )
        for n in (18, 20)
    },
    **{
        f"hivid.evaluation.dense.{name}": (
            "reshape(-2, 2) instead of reshape(-1, 2): numpy takes any negative size as the one "
            "inferred dimension"
        )
        for name in (
            "x_dense_scores__mutmut_90",
            "x_dense_scores__mutmut_103",
            "x__soda_matrices__mutmut_42",
            "x__soda_matrices__mutmut_62",
        )
    },
    **{
        f"hivid.evaluation.dense.{name}": (
            "zip(strict=None/False/default) instead of strict=True: both sides are built to the "
            "same length (strict only guards against a bug that cannot happen)"
        )
        for name in (
            "x_dense_scores__mutmut_154",
            "x_dense_scores__mutmut_157",
            "x_dense_scores__mutmut_163",
            "x_dense_scores__mutmut_194",
            "x_dense_scores__mutmut_197",
            "x_dense_scores__mutmut_198",
            "x__soda_finish__mutmut_9",
            "x__soda_finish__mutmut_12",
            "x__soda_finish__mutmut_14",
            "x_evaluate_files__mutmut_31",
            "x_evaluate_files__mutmut_34",
            "x_evaluate_files__mutmut_35",
        )
    },
    "hivid.evaluation.dense.x_dense_scores__mutmut_189": (
        "meteor.evaluate([]) when there are no groups: it sends nothing and returns []"
    ),
    **{
        f"hivid.evaluation.dense.x_dense_scores__mutmut_{n}": (
            "_soda_matrices without the GT tokens dense_scores made: it tokenizes the same "
            "sentences with the same tokenizer again (only slower)"
        )
        for n in (135, 139)
    },
    **{
        f"hivid.evaluation.dense.{name}": (
            "a METEOR pair (or score 1) also for cells of tIoU 0: SODA weighs a cell by "
            "tIoU x METEOR, so those cells stay 0 (only more METEOR work)"
        )
        for name in (
            "x__soda_matrices__mutmut_75",
            "x__soda_matrices__mutmut_78",
            "x__soda_finish__mutmut_23",
        )
    },
    **{
        f"hivid.evaluation.dense.x__best_file_localization__mutmut_{n}": (
            "cut.get(v, None) instead of []: localization_scores reads results.get(v) or []"
        )
        for n in (13, 15)
    },
    **{
        f"hivid.evaluation.dense.x_check_inputs__mutmut_{n}": (
            "'results' spelled otherwise in the missing-field test: a missing 'results' is "
            "also caught by the isinstance(pred.get('results'), Mapping) test beside it"
        )
        for n in (18, 19)
    },
    "hivid.training.warmstart.x_keep_weights__mutmut_34": (
        "metrics.json written with encoding=None: the locale's, UTF-8 on every host (C.UTF-8), "
        "and the JSON is ASCII anyway"
    ),
    "hivid.training.warmstart.x_keep_weights__mutmut_36": (
        "metrics.json written with the default encoding: the locale's, UTF-8 (and ASCII JSON)"
    ),
    "hivid.training.warmstart.x_keep_weights__mutmut_47": "'UTF-8' is the same codec as 'utf-8'",
    **{
        f"hivid.tracking.audit.x__trace__mutmut_{n}": (
            "another name for a download's folder in the audit's fresh scratch directory "
            "('model' / 'parent'): still apart from the other downloads'"
        )
        for n in (76, 77, 89, 90, 120, 121, 138, 139)
    },
    **{
        f"hivid.tracking.audit.x__md5__mutmut_{n}": (
            "hashlib.md5(usedforsecurity=None/True): the same digest (the flag only matters "
            "on FIPS builds, which refuse md5 for security use)"
        )
        for n in (2, 5)
    },
    **{
        f"hivid.tracking.audit.x__dvc_file__mutmut_{n}": (
            "another name for the listing's link: _dvc_file keeps only its reason, which never "
            "holds the name"
        )
        for n in (7, 11, 12)
    },
    **{
        f"hivid.tracking.audit.x_verify_commit__mutmut_{n}": (
            "data.dvc at the revision without 'outs' (or absent): the mutant's None[0] or "
            "'XXXX'.get raises TypeError / AttributeError, which the link catches as pinned "
            "None, what the original reads from [{}] / {}"
        )
        for n in (127, 129, 133)
    },
    "hivid.tracking.audit.x__trace__mutmut_126": (
        "rows '' instead of None when there is no ingest run: no video links either way"
    ),
    "hivid.tracking.audit.x__trace__mutmut_160": (
        "verify_data(None, ...): its root only opens a DvcObjects when none is passed, and "
        "the walk passes its own"
    ),
    "hivid.tracking.audit.x__verify_gate__mutmut_11": (
        "rpartition instead of partition of '<result id>:<outcome>': result ids are sha256 "
        "hex, without ':'"
    ),
    "hivid.tracking.audit.x_checkout_data__mutmut_63": (
        "`!= 1` instead of `!= 0` after `dvc checkout`: DVC exits 255 on a failed checkout, "
        "and a needless `dvc pull` after a good one restores the same files"
    ),
    **{
        f"hivid.tracking.audit.x_checkout_data__mutmut_{n}": (
            "`dvc checkout` broken (command or option names): `dvc pull --force` then "
            "restores the same files from the cache, without reading the remote when the cache "
            "holds every object (not the cwd mutants 47/51: run in another DVC project's folder, "
            "a checkout there could succeed and leave this one unrestored)"
        )
        for n in (54, 55, 56, 57, 58, 59)
    },
    "hivid.tracking.audit.x__trace__mutmut_51": (
        "the last stage (ingest) looks up the tag 'upstream.None.run', which nothing sets: "
        "None either way, and the walk ends there"
    ),
    "hivid.tracking.audit.x_checkout_data__mutmut_36": (
        "yaml.safe_dump(sort_keys=None): falsy, the same unsorted dump as sort_keys=False"
    ),
    **{
        f"hivid.tracking.audit.x_checkout_data__mutmut_{n}": (
            "`dvc checkout` run with text=None/False/default: its output is never read (on "
            "failure `dvc pull` runs and its stderr is the one reported)"
        )
        for n in (49, 53, 61)
    },
    "hivid.tracking.audit_model.x__files_link__mutmut_51": (
        "an absent manifest tag read as 'XXXX' instead of '': json.loads fails on both, the "
        "same '(manifest tag unreadable)'"
    ),
    "hivid.tracking.audit_model.x__verify_warm_start__mutmut_107": (
        "the parent's own checkpoint link built with detail None: only its status and reason "
        "are read"
    ),
}

# Repository files and folders the tests read besides src/ and tests/ (linked into the work dir).
LINKED = ("src", "tests", "flows", "params.yaml", "dvc.yaml", "prefect.yaml", "data.dvc")
KILLED = {"killed", "timeout"}  # a timeout is a test run that never passed


def _tests_for(module: str) -> list[str]:
    """Test files (globs expanded) and test ids of ``module``, those that exist."""
    files: list[str] = []
    for pattern in MODULES[module]:
        path, sep, test = pattern.partition("::")
        found = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob(path))
        files += [f + sep + test for f in found]
    return list(dict.fromkeys(files))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def _toml_table(name: str, table: dict[str, Any]) -> str:
    return f"[{name}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in table.items())


def _slug(module: str) -> str:
    return module.removesuffix(".py").replace("/", ".")


def prepare(module: str, tests: list[str]) -> Path:
    """A fresh work directory for ``module`` with its generated mutmut configuration."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    shared = dict(project["tool"]["mutmut"])
    shared["only_mutate"] = [f"src/hivid/{module}"]
    shared["pytest_add_cli_args_test_selection"] = tests
    work = WORK / _slug(module)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for name in LINKED:
        if (ROOT / name).exists():
            (work / name).symlink_to(ROOT / name)
    (work / "pyproject.toml").write_text(
        _toml_table("tool.mutmut", shared)
        + "\n"
        + _toml_table("tool.pytest.ini_options", project["tool"]["pytest"]["ini_options"]),
        encoding="utf-8",
    )
    return work


def _functions(module: str, functions: list[str]) -> list[str]:
    """mutmut name patterns of ``functions`` (``name`` or ``Class.method``) of ``module``."""
    prefix = "hivid." + _slug(module)
    out = []
    for f in functions:
        cls, _, meth = f.rpartition(".")
        out.append(
            f"{prefix}.x\u01c1{cls}\u01c1{meth}__mutmut_*" if cls else f"{prefix}.x_{f}__mutmut_*"
        )
    return out


def score(module: str, functions: list[str] | None = None) -> dict[str, Any]:
    """Counts by mutmut status for ``module``'s last run, and the score; ``functions``: only
    the mutants of these functions count (a partial score, marked as such)."""
    meta = WORK / _slug(module) / "mutants" / "src" / "hivid" / f"{module}.meta"
    if not meta.is_file():
        raise SystemExit(f"{module}: no results ({meta} missing): run it first")
    from mutmut.stats import status_by_exit_code

    codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
    status = {k: status_by_exit_code[v] for k, v in codes.items()}
    all_mutants = len(status)
    if functions:
        patterns = _functions(module, functions)
        status = {k: v for k, v in status.items() if any(fnmatch(k, p) for p in patterns)}
    return {**summarise(module, status, all_mutants), "functions": functions or None}


def summarise(module: str, status: dict[str, str], module_mutants: int) -> dict[str, Any]:
    """Score of the mutants in ``status`` (name -> mutmut status) of ``module``."""
    counts = Counter(status.values())
    equivalent = sorted(k for k, s in status.items() if k in EQUIVALENT and s not in KILLED)
    survivors = sorted(k for k, s in status.items() if s not in KILLED and k not in EQUIVALENT)
    killed = sum(counts[s] for s in KILLED)
    considered = len(status) - len(equivalent)
    return {
        "module": module,
        "total": len(status),
        "killed": killed,
        "equivalent": equivalent,
        "considered": considered,
        "score": killed / considered if considered else 1.0,
        "by_status": dict(sorted(counts.items())),
        "not_killed": {k: status[k] for k in survivors},
        "module_mutants": module_mutants,
        "statuses": dict(sorted(status.items())),
        "source_sha256": _source_sha256(module),
    }


def _source_sha256(module: str) -> str:
    return hashlib.sha256((ROOT / "src" / "hivid" / module).read_bytes()).hexdigest()


def merge(previous: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """``new`` (one run) combined with the module's stored result: a complete run replaces it; a
    partial one (``--functions``, stopped by ``--timeout``, ``--unchecked``) updates the mutants
    it checked, on the same source only (mutant names follow the source). The merged score is
    over every mutant of the module; those no run checked count as "not checked" (not killed)
    and ``parts`` lists the runs it is made of."""
    part = {k: new.get(k) for k in ("date", "commit", "functions", "seconds", "timed_out")}
    part["checked"] = sum(v != "not checked" for v in new["statuses"].values())
    complete = not new.get("functions") and not new.get("timed_out") and not new.get("unchecked")
    if complete or not previous or previous.get("source_sha256") != new["source_sha256"]:
        if complete:  # (a --survivors run re-reads the whole work directory: complete too)
            unchecked = new["by_status"].get("not checked", 0)
            return {**new, "parts": [part], "partial": bool(unchecked)}
        status = dict(new["statuses"])
        parts = [part]
    else:
        status = dict(previous.get("statuses") or {})
        status.update({k: v for k, v in new["statuses"].items() if v != "not checked"})
        parts = [*previous.get("parts", []), part]
    module_mutants = new["module_mutants"]
    if new.get("functions"):  # the mutants outside the functions were not run this time
        names = _module_mutant_names(new["module"])
        status = {**dict.fromkeys(names, "not checked"), **status}
    merged = summarise(new["module"], status, module_mutants)
    rest: dict[str, Any] = {k: new[k] for k in ("date", "commit", "tests") if k in new}
    unchecked = merged["by_status"].get("not checked", 0)
    return {**merged, **rest, "functions": None, "parts": parts, "partial": bool(unchecked)}


def _module_mutant_names(module: str) -> list[str]:
    meta = WORK / _slug(module) / "mutants" / "src" / "hivid" / f"{module}.meta"
    return list(json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"])


def run(
    module: str,
    max_children: int,
    nice: int,
    timeout_s: float | None,
    tests: list[str] | None = None,
    survivors: bool = False,
    functions: list[str] | None = None,
    only: list[str] | None = None,
) -> dict[str, Any]:
    """One fresh mutmut run over ``module`` (against ``tests``, default its own); stopped after
    ``timeout_s`` (what ran is scored, the rest counts as "not checked"). ``survivors``: keep
    the last run's work directory and results and re-test only the mutants it did not kill.
    ``functions``: only the mutants of these functions are tested and scored (a partial score).
    ``only``: test just these mutants (by name), fresh (``--unchecked``)."""
    tests = tests or _tests_for(module)
    names: list[str] = _functions(module, functions) if functions else list(only or [])
    if survivors:
        work = WORK / _slug(module)
        left = score(module, functions)["not_killed"]
        names = [k for k, v in left.items() if v != "not checked"]  # those: --unchecked
        if not names:
            print(f"== {module}: no surviving mutant to re-test")
            return {**score(module, functions), "seconds": 0.0, "timed_out": False}
    else:
        work = prepare(module, tests)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MUTANT_UNDER_TEST")}
    env.update(
        {
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "HF_HUB_OFFLINE": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
    )
    exe = Path(sys.executable).parent / "mutmut"
    cmd = [str(exe), "run", "--max-children", str(max_children), *names]
    if nice:
        cmd = ["nice", "-n", str(nice), *cmd]
    print(f"== {module}: mutmut over {len(tests)} test file(s)/id(s) in {work}", flush=True)
    log = work / "mutmut.log"
    t0 = time.perf_counter()
    timed_out = False
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)  # mutmut and the test processes it forked
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            code, timed_out = 0, True
    seconds = time.perf_counter() - t0
    if code != 0:
        tail = log.read_text(encoding="utf-8").strip().splitlines()[-15:]
        raise SystemExit(f"{module}: mutmut failed (exit {code}), {log}:\n" + "\n".join(tail))
    result = score(module, functions)
    result["seconds"] = round(seconds, 1)
    result["timed_out"] = timed_out
    if timed_out:
        print(f"   stopped after {timeout_s:.0f} s: unfinished mutants count as not checked")
    return result


def _commit() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True)
    return r.stdout.decode().strip() or "unknown"


def _load_scores() -> dict[str, Any]:
    return json.loads(SCORES.read_text(encoding="utf-8")) if SCORES.is_file() else {}


def _print(results: list[dict[str, Any]], verbose: bool) -> None:
    print(f"\n{'module':<24} {'killed':>7} {'total':>6} {'equiv.':>6} {'score':>7}  not killed")
    for r in results:
        rest = dict(Counter(r["not_killed"].values()))
        print(
            f"{r['module']:<24} {r['killed']:>7} {r['total']:>6} {len(r['equivalent']):>6} "
            f"{100 * r['score']:>6.1f}%  {rest or '-'}"
        )
        if r.get("functions"):
            print(
                f"{'':<24} partial: {r['total']} of the module's {r['module_mutants']} mutants "
                f"({', '.join(r['functions'])})"
            )
        parts = r.get("parts") or []
        if len(parts) > 1 or r.get("partial"):
            unchecked = r["by_status"].get("not checked", 0)
            runs = "; ".join(
                f"{p['checked']} checked"
                + (f" ({', '.join(p['functions'])})" if p["functions"] else "")
                + (" stopped" if p["timed_out"] else "")
                for p in parts
            )
            print(
                f"{'':<24} merged from {len(parts)} run(s) [{runs}]"
                + (f"; {unchecked} not checked yet (--unchecked resumes)" if unchecked else "")
            )
    if verbose:
        for r in results:
            for name, status in r["not_killed"].items():
                print(f"  {status:<10} {name}")
            for name in r["equivalent"]:
                print(f"  equivalent {name}: {EQUIVALENT[name]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="*", help=f"modules under src/hivid (default: {len(MODULES)})")
    ap.add_argument("--list", action="store_true", help="print the modules and their tests")
    ap.add_argument("--report", action="store_true", help="print the last scores, run nothing")
    ap.add_argument("--max-children", type=int, default=2, help="mutants tested in parallel")
    ap.add_argument("--nice", type=int, default=10, help="niceness of the mutmut run (0: none)")
    ap.add_argument(
        "--timeout", type=float, default=None, help="stop a module's run after this many seconds"
    )
    ap.add_argument(
        "--tests",
        nargs="+",
        default=None,
        help="run against these test files/ids instead (e.g. to score an older test set)",
    )
    ap.add_argument(
        "--survivors",
        action="store_true",
        help="re-test only the last run's mutants not killed, in its work directory (after "
        "adding tests; a fresh run stays the reference: mutmut may not map a test added to a "
        "file it already ran to the functions it covers, so this can under-count kills)",
    )
    ap.add_argument(
        "--functions",
        nargs="+",
        default=None,
        help="test and score only the mutants of these functions (name, or Class.method): a "
        "partial score, reported as such",
    )
    ap.add_argument(
        "--unchecked",
        action="store_true",
        help="test only the mutants the stored result has not checked (after --functions or "
        "--timeout runs, on the same source), in a fresh run; with --survivors its survivors "
        "too: the runs are merged into one module score",
    )
    ap.add_argument("--json", action="store_true", help="print the scores as JSON")
    ap.add_argument("-v", "--verbose", action="store_true", help="list every mutant not killed")
    ap.add_argument(
        "--fail-under", type=float, default=None, help="exit 1 when a module scores below (0-1)"
    )
    args = ap.parse_args(argv)
    modules = args.modules or list(MODULES)
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        ap.error(f"unknown module(s) {unknown}; known: {', '.join(MODULES)}")
    if args.list:
        for m in modules:
            print(f"{m}: {' '.join(_tests_for(m))}")
        return 0
    stored = _load_scores()
    if args.report:  # the stored statuses, judged with today's EQUIVALENT list
        results = [
            {**stored[m], **summarise(m, stored[m]["statuses"], stored[m]["module_mutants"])}
            for m in modules
            if m in stored
        ]
    else:
        results = []
        for m in modules:
            only = None
            if args.unchecked:
                before = stored.get(m) or {}
                if before.get("source_sha256") != _source_sha256(m):
                    ap.error(f"{m}: no stored result for this source to resume (run it first)")
                only = [
                    k
                    for k, v in before["statuses"].items()
                    if v == "not checked"
                    or (args.survivors and v not in KILLED and k not in EQUIVALENT)
                ]
                if not only:
                    print(f"== {m}: every mutant already checked")
                    results.append(before)
                    continue
            r = run(
                m,
                args.max_children,
                args.nice,
                args.timeout,
                args.tests,
                args.survivors and not args.unchecked,
                args.functions,
                only,
            )
            r["tests"] = args.tests or _tests_for(m)
            r["survivors_only"] = args.survivors
            r["unchecked"] = bool(only)
            r.update({"date": datetime.now(UTC).isoformat(timespec="seconds"), "commit": _commit()})
            stored = _load_scores()  # re-read: another module's run may have finished meanwhile
            key = m if not args.tests else f"{m} [--tests]"  # keep the real score apart
            r = merge(stored.get(key), r)
            stored[key] = r
            SCORES.parent.mkdir(parents=True, exist_ok=True)
            SCORES.write_text(json.dumps(stored, indent=2), encoding="utf-8")
            results.append(r)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        _print(results, args.verbose)
    if args.fail_under is not None and any(r["score"] < args.fail_under for r in results):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
