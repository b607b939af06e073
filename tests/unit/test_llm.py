"""LLM backends: the OpenAI-compatible endpoint (httpx MockTransport and a real 127.0.0.1 server)
and the packaged gemma-3-270m through transformers (slow: one real short generation)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest

from hivid.annotate.llm import AnnotateLLMConfig, EndpointLLM, LLMError, cut_at_stop, make_llm
from hivid.configbase import ConfigError, from_mapping


def _ok(content: str) -> httpx.Response:
    return httpx.Response(200, json={"choices": [{"message": {"content": content}}]})


def test_config_validation() -> None:
    cfg = from_mapping(
        AnnotateLLMConfig, {"backend": "endpoint", "model": "qwen", "max_retries": 2}
    )
    assert cfg.identity() == {
        "backend": "endpoint",
        "model": "qwen",
        "base_url": "http://127.0.0.1:8000/v1",
    }
    assert AnnotateLLMConfig().identity() == {"backend": "none"}
    assert make_llm(AnnotateLLMConfig()) is None
    with pytest.raises(ConfigError, match="timeout_s"):
        AnnotateLLMConfig(timeout_s=0)
    with pytest.raises(ConfigError, match="base_url"):
        AnnotateLLMConfig(base_url="127.0.0.1:8000")
    with pytest.raises(ConfigError, match="backend"):
        from_mapping(AnnotateLLMConfig, {"backend": "gpt"})


def test_cut_at_stop() -> None:
    assert cut_at_stop('fixed text" and more', ['"', "\n"]) == "fixed text"
    assert cut_at_stop("no stop", None) == "no stop"


def test_endpoint_request_and_key_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVID_TEST_LLM_KEY", "sk-secret-123")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _ok("4\nmore text")

    cfg = AnnotateLLMConfig(backend="endpoint", model="qwen-test", api_key_env="HIVID_TEST_LLM_KEY")
    llm = EndpointLLM(cfg, transport=httpx.MockTransport(handler))
    assert llm.complete("Score:", max_new_tokens=3, stop=["\n"]) == "4"
    (req,) = seen
    assert str(req.url) == "http://127.0.0.1:8000/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer sk-secret-123"
    body = json.loads(req.content)
    assert body["model"] == "qwen-test"
    assert body["max_tokens"] == 3
    assert body["temperature"] == 0.0
    assert body["messages"] == [{"role": "user", "content": "Score:"}]
    assert "sk-secret" not in repr(llm.__dict__.get("name"))


def test_endpoint_missing_key_env_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HIVID_TEST_NO_KEY", raising=False)
    with pytest.raises(LLMError, match="HIVID_TEST_NO_KEY"):
        EndpointLLM(AnnotateLLMConfig(backend="endpoint", api_key_env="HIVID_TEST_NO_KEY"))


def test_endpoint_retries_with_exponential_backoff() -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ConnectError("connection refused", request=request)
        if len(calls) == 2:
            return httpx.Response(503, text="busy")
        if len(calls) == 3:
            raise httpx.ReadTimeout("slow", request=request)
        return _ok("done")

    cfg = AnnotateLLMConfig(backend="endpoint", max_retries=3, backoff_s=0.5)
    llm = EndpointLLM(cfg, transport=httpx.MockTransport(handler), sleep=sleeps.append)
    assert llm.complete("x") == "done"
    assert len(calls) == 4
    assert sleeps == [0.5, 1.0, 2.0]


def test_endpoint_gives_up_with_one_clear_error() -> None:
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    cfg = AnnotateLLMConfig(backend="endpoint", base_url="http://127.0.0.1:9/v1", max_retries=2)
    llm = EndpointLLM(cfg, transport=httpx.MockTransport(handler), sleep=sleeps.append)
    with pytest.raises(LLMError) as err:
        llm.complete("x")
    msg = str(err.value)
    assert msg.startswith("LLM endpoint http://127.0.0.1:9/v1/chat/completions unreachable")
    assert "after 3 attempts" in msg and "ConnectError" in msg
    assert "\n" not in msg
    assert sleeps == [1.0, 2.0]
    # The next call fails at once with the same message (no new requests, no waiting) ...
    with pytest.raises(LLMError, match="unreachable after 3 attempts"):
        llm.complete("y")
    assert sleeps == [1.0, 2.0]
    # ... until DOWN_S has passed.
    llm._clock = lambda: 1e12
    with pytest.raises(LLMError):
        llm.complete("z")
    assert sleeps == [1.0, 2.0, 1.0, 2.0]


def test_endpoint_client_error_is_not_retried() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(400, text="bad model")

    llm = EndpointLLM(AnnotateLLMConfig(backend="endpoint"), transport=httpx.MockTransport(handler))
    with pytest.raises(LLMError, match="HTTP 400"):
        llm.complete("x")
    assert len(calls) == 1


class _SlowThenOK(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        body: dict[str, Any] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).hits.append(body["messages"][0]["content"])
        if len(type(self).hits) == 1:
            threading.Event().wait(1.0)  # longer than the client's timeout
        payload = json.dumps({"choices": [{"message": {"content": "real server"}}]}).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:  # the client gave up on this (timed-out) request
            pass

    def log_message(self, *args: Any) -> None:
        pass


def test_endpoint_real_loopback_server_timeout_then_retry() -> None:
    _SlowThenOK.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowThenOK)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        cfg = AnnotateLLMConfig(
            backend="endpoint",
            base_url=f"http://127.0.0.1:{port}/v1",
            timeout_s=0.3,
            max_retries=2,
            backoff_s=0.0,
        )
        llm = EndpointLLM(cfg)
        assert llm.complete("hello") == "real server"
        assert len(_SlowThenOK.hits) == 2
    finally:
        server.shutdown()
        server.server_close()


def test_endpoint_nothing_listening() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowThenOK)
    port = server.server_address[1]
    server.server_close()  # the port is now closed
    cfg = AnnotateLLMConfig(
        backend="endpoint", base_url=f"http://127.0.0.1:{port}/v1", max_retries=1, backoff_s=0.0
    )
    with pytest.raises(LLMError, match=f"127.0.0.1:{port}.*unreachable after 2 attempts"):
        EndpointLLM(cfg).complete("x")


@pytest.mark.slow
def test_local_gemma_real_generation(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The packaged gemma-3-270m GGUF, converted once into the model cache, completes text."""
    from hivid.annotate.llm import LocalLLM, resolve_local_llm

    llm = LocalLLM(AnnotateLLMConfig(backend="local", max_new_tokens=8))
    assert llm.name == "gemma-3-270m"
    assert llm.sha256 is not None and len(llm.sha256) == 64
    out = llm.complete("Monday, Tuesday, Wednesday,", max_new_tokens=6, stop=["\n"])
    assert "Thursday" in out
    # the cached conversion is reused and verified (same digest, no second conversion)
    assert resolve_local_llm("gemma-3-270m")[1] == llm.sha256


@pytest.mark.slow
def test_gemma_tokenizer_is_bpe_after_conversion() -> None:
    """The GGUF's SentencePiece-BPE vocabulary is rebuilt as BPE: common words stay whole."""
    from transformers import AutoTokenizer

    from hivid.annotate.llm import GEMMA_NAME, resolve_local_llm

    path, _ = resolve_local_llm(GEMMA_NAME)
    tok = AutoTokenizer.from_pretrained(path)
    ids = tok("After one week with the silk shampoo", add_special_tokens=False)["input_ids"]
    pieces = [tok.decode([i]) for i in ids]
    assert pieces == ["After", " one", " week", " with", " the", " silk", " shampoo"]
