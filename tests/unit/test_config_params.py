"""params.yaml errors name the file, line and key; the nightly refuses a bad file up front."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from hivid import config
from hivid.config import check_all, load_section, read_params
from hivid.configbase import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _params(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "params.yaml"
    p.write_text(text)
    return p


def test_the_repository_params_file_is_valid() -> None:
    assert config.config_problems(REPO / "params.yaml") == []


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    p = _params(tmp_path, "ingest:\n  min_fps: 1.0\n  max_fps: [120\ndataset:\n  seed: 0\n")
    with pytest.raises(ConfigError) as exc:
        read_params(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}:") and "YAML syntax error" in msg and "\n" not in msg
    line = int(msg.split(":")[1])
    assert 3 <= line <= 4, msg


def test_duplicate_keys_are_an_error_naming_both_lines(tmp_path: Path) -> None:
    p = _params(tmp_path, "train_stage1:\n  lr: 1.0e-3\n  max_steps: 3\n  lr: 5.0e-3\n")
    with pytest.raises(ConfigError, match=r"params\.yaml:4: duplicate key 'lr' \(first at line 2"):
        load_section(p, "train_stage1")
    p = _params(tmp_path, "ingest: {}\ndataset: {}\ningest: {}\n")
    with pytest.raises(ConfigError, match=r":3: duplicate key 'ingest'"):
        read_params(p)


@pytest.mark.parametrize(("text", "value"), [("3e-3", 3e-3), ("1E5", 1e5), ("2.5e+2", 250.0)])
def test_exponent_numbers_without_a_dot_are_numbers(
    tmp_path: Path, text: str, value: float
) -> None:
    # PyYAML (YAML 1.1) reads `3e-3` as the string "3e-3"; DVC (YAML 1.2) reads a float
    p = _params(tmp_path, f"train_stage1:\n  lr: {text}\n")
    cfg = load_section(p, "train_stage1")
    assert cfg.lr == pytest.approx(value) and isinstance(cfg.lr, float)
    assert read_params(_params(tmp_path, "demo:\n  seed: 7\n"))["demo"]["seed"] == 7


def test_a_range_error_points_at_the_line_of_its_key(tmp_path: Path) -> None:
    p = _params(tmp_path, "train_stage1:\n  max_steps: 3\n  lr: -1.0\n")
    with pytest.raises(ConfigError, match=r"params\.yaml:3: train_stage1: lr must be > 0"):
        load_section(p, "train_stage1")


def test_a_quoted_number_says_so(tmp_path: Path) -> None:
    p = _params(tmp_path, 'train_stage1:\n  max_steps: 3\n  lr: "3e-3"\n')
    with pytest.raises(ConfigError, match=r"params\.yaml:3: .*train_stage1\.lr.*quoted number"):
        load_section(p, "train_stage1")


def test_a_section_that_is_not_a_mapping_is_named(tmp_path: Path) -> None:
    p = _params(tmp_path, "demo:\n  seed: 0\ningest: [1, 2]\n")
    with pytest.raises(ConfigError) as exc:
        load_section(p, "ingest")
    msg = str(exc.value)
    assert msg.startswith(f"{p}:3: ingest: expected a mapping"), msg
    assert "dictionary update sequence" not in msg


def test_typo_names_the_dotted_key_and_its_line(tmp_path: Path) -> None:
    p = _params(tmp_path, "ingest:\n  min_fps: 1.0\ntrain_stage1:\n  max_steps: 3\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"params\.yaml:5: unknown key\(s\) train_stage1\.lrr"):
        check_all(p)


def test_every_bad_section_is_reported_at_once(tmp_path: Path) -> None:
    p = _params(
        tmp_path,
        "ingest: [1, 2]\ntrain_stage1:\n  lrr: 0.1\ndataset:\n  val_fraction: 2.0\n",
    )
    problems = config.config_problems(p)
    assert len(problems) == 3, problems
    assert any("ingest" in x for x in problems)
    assert any("train_stage1.lrr" in x for x in problems)
    assert any("val_fraction" in x for x in problems)
    one = config.config_failure(p, tmp_path)
    assert one is not None and "\n" not in one and str(tmp_path) not in one
    assert one.startswith("invalid configuration, no stage ran: params.yaml:")


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        _Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.slow
def test_nightly_rejects_a_bad_config_before_any_stage(tmp_path: Path) -> None:
    """A typo under train_stage1 stops the real nightly flow at once: no data, no stage, no
    retry; the error, the summary and the notification name the key and the line."""
    ws = tmp_path / "ws"
    ws.mkdir()
    shutil.copytree(REPO / "flows", ws / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dvc.yaml", ws / "dvc.yaml")
    text = (REPO / "params.yaml").read_text().replace("  lr: 3.0e-3\n", "  lrr: 3.0e-3\n", 1)
    assert "lrr" in text
    (ws / "params.yaml").write_text(text)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith("  lrr:"))
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {
            **os.environ,
            "HIVID_NOTIFY_WEBHOOK": f"http://127.0.0.1:{server.server_port}/hook",
            "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "240",  # 2 busy cores
        }
        env.pop("HIVID_NOTIFY_BLOCK", None)
        env.pop("MLFLOW_TRACKING_URI", None)
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "hivid"), "nightly", "--repo", str(ws)],
            cwd=ws,
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
    finally:
        server.shutdown()
        server.server_close()
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    key = f"params.yaml:{line}: unknown key(s) train_stage1.lrr"
    assert f"hivid nightly: error: invalid configuration, no stage ran: {key}" in out, out
    assert out.count("FAILED - invalid configuration") == 1, out  # logged once: never retried
    assert _Hook.received and key in _Hook.received[0]["text"], _Hook.received
    assert not (ws / "data").exists() and not (ws / "outputs").exists()  # nothing ran
    assert "prepare_data" not in out
