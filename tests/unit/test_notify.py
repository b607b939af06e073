"""Failure notifications of the nightly flow: what the webhook receives, and that its URL (a
secret: chat webhooks carry their token in the path) never reaches the output."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace
from typing import Any

import pytest

from flows.nightly import nightly, notify_failure

SECRET = "T0KEN-s3cr3t-9f8e7d"


class _Hook:
    """A loopback HTTP server that records every request and answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.requests.append(
                    {
                        "method": "POST",
                        "path": self.path,
                        "content_type": self.headers["Content-Type"],
                        "body": body,
                    }
                )
                self.send_response(status)
                self.end_headers()

            def do_GET(self) -> None:
                hook.requests.append({"method": "GET", "path": self.path})
                self.send_response(405)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/{SECRET}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Hook]:
    h = _Hook()
    monkeypatch.delenv("HIVID_NOTIFY_BLOCK", raising=False)
    monkeypatch.setenv("HIVID_NOTIFY_WEBHOOK", h.url)
    yield h
    h.close()


def _failed(message: str) -> tuple[Any, Any]:
    run = SimpleNamespace(name="brave-fox", id="0f9c-123")
    return run, SimpleNamespace(name="Failed", message=message)


def test_failure_webhook_receives_one_json_post(
    hook: _Hook, capsys: pytest.CaptureFixture[str]
) -> None:
    run, state = _failed("stage validate failed (exit 2)")
    notify_failure(None, run, state)
    assert len(hook.requests) == 1
    req = hook.requests[0]
    assert (req["method"], req["path"]) == ("POST", f"/hooks/{SECRET}")
    assert req["content_type"] == "application/json"
    body = json.loads(req["body"])
    assert list(body) == ["text"]
    text = body["text"]
    assert text.startswith("HiVid nightly flow run brave-fox (0f9c-123) ended Failed: ")
    assert "stage validate failed (exit 2)" in text
    assert SECRET not in text  # the receiver's own address is not echoed into the message
    assert capsys.readouterr().out == ""  # success prints nothing (the URL in particular)


def test_long_failure_message_is_capped(hook: _Hook) -> None:
    run, state = _failed("#" * 5000)
    notify_failure(None, run, state)
    text = json.loads(hook.requests[0]["body"])["text"]
    assert text.count("#") == 500  # the state message is cut at 500 characters


@pytest.mark.parametrize("status", [500, 404])
def test_refusing_webhook_does_not_raise_or_print_the_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], status: int
) -> None:
    h = _Hook(status)
    monkeypatch.delenv("HIVID_NOTIFY_BLOCK", raising=False)
    monkeypatch.setenv("HIVID_NOTIFY_WEBHOOK", h.url)
    try:
        notify_failure(None, *_failed("stage annotate failed"))
    finally:
        h.close()
    assert len(h.requests) == 1  # it was sent, once (no retry loop hiding the failure)
    out = capsys.readouterr()
    assert out.out == "notification failed: HTTPError\n"
    assert SECRET not in out.out + out.err and "127.0.0.1" not in out.out + out.err


def test_unreachable_webhook_does_not_raise_or_print_the_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("HIVID_NOTIFY_BLOCK", raising=False)
    monkeypatch.setenv("HIVID_NOTIFY_WEBHOOK", f"http://127.0.0.1:9/hooks/{SECRET}")
    notify_failure(None, *_failed(""))
    out = capsys.readouterr()
    assert out.out == "notification failed: URLError\n"
    assert SECRET not in out.out + out.err


def test_no_notifier_configured_sends_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    h = _Hook()
    monkeypatch.delenv("HIVID_NOTIFY_BLOCK", raising=False)
    monkeypatch.delenv("HIVID_NOTIFY_WEBHOOK", raising=False)
    try:
        notify_failure(None, *_failed("boom"))
    finally:
        h.close()
    assert h.requests == [] and capsys.readouterr().out == ""


def test_the_nightly_flow_calls_it_on_failure_and_crash() -> None:
    assert notify_failure in nightly.on_failure_hooks
    assert notify_failure in nightly.on_crashed_hooks
