from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import pytest

from flows.nightly import notify_failure


def test_failure_webhook_receives_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    monkeypatch.delenv("HIVID_NOTIFY_BLOCK", raising=False)
    monkeypatch.setenv("HIVID_NOTIFY_WEBHOOK", f"http://127.0.0.1:{server.server_port}/hook")
    run = SimpleNamespace(name="brave-fox", id="123")
    state = SimpleNamespace(name="Failed", message="stage validate failed (exit 1)")
    notify_failure(None, run, state)
    thread.join(5)
    server.server_close()
    assert received and "stage validate failed" in received[0]["text"]
    assert "brave-fox" in received[0]["text"]


def test_unreachable_webhook_does_not_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVID_NOTIFY_WEBHOOK", "http://127.0.0.1:9/nothing")
    notify_failure(
        None, SimpleNamespace(name="x", id="1"), SimpleNamespace(name="Failed", message="")
    )
