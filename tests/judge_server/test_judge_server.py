"""The judge server: OpenAI-compatible answers from a real (tiny) transformers model, in process and as a CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from purpcode.judge_server.engine import ChatEngine, resolve_model, truncate_at_stop
from purpcode.judge_server.server import create_app


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> ChatEngine:
    return ChatEngine(str(tiny_model_dir), device="cpu", max_model_len=256)


@pytest.fixture(scope="module")
def client(engine: ChatEngine) -> Iterator[TestClient]:
    with TestClient(create_app(engine, ["judge", "tiny-random"], max_batch=4)) as c:
        yield c


def _chat(client: TestClient, **body: object) -> httpx.Response:
    payload = {"model": "judge", "messages": [{"role": "user", "content": "Is this code malicious?"}]}
    payload.update(body)
    return client.post("/v1/chat/completions", json=payload)


def test_models_lists_served_names(client: TestClient) -> None:
    data = client.get("/v1/models").json()
    assert [m["id"] for m in data["data"]] == ["judge", "tiny-random"]
    assert client.get("/health").status_code == 200


def test_chat_completion_shape_and_n(client: TestClient) -> None:
    resp = _chat(client, max_tokens=6, temperature=0.9, n=3, seed=1)
    assert resp.status_code == 200
    data = resp.json()
    assert data["object"] == "chat.completion"
    assert [c["index"] for c in data["choices"]] == [0, 1, 2]
    for c in data["choices"]:
        assert c["message"]["role"] == "assistant"
        assert isinstance(c["message"]["content"], str)
        assert c["finish_reason"] in ("stop", "length")
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 0 < usage["completion_tokens"] <= 3 * 6


def test_greedy_is_deterministic_and_n_copies(client: TestClient) -> None:
    a = _chat(client, max_tokens=8, temperature=0, n=2).json()
    b = _chat(client, max_tokens=8, temperature=0).json()
    texts = [c["message"]["content"] for c in a["choices"]]
    assert texts[0] == texts[1] == b["choices"][0]["message"]["content"]


def test_stop_sequence_truncates(client: TestClient) -> None:
    full = _chat(client, max_tokens=12, temperature=0).json()["choices"][0]["message"]["content"]
    assert len(full) >= 2
    stop = full[1:3] if full[1:3].strip() else full[1]
    cut = _chat(client, max_tokens=12, temperature=0, stop=[stop]).json()["choices"][0]
    assert cut["finish_reason"] == "stop"
    assert cut["stop_reason"] == stop
    assert cut["message"]["content"] == full[: full.find(stop)]
    kept = _chat(client, max_tokens=12, temperature=0, stop=stop, include_stop_str_in_output=True).json()
    assert kept["choices"][0]["message"]["content"] == full[: full.find(stop) + len(stop)]


def test_truncate_at_stop_earliest_wins() -> None:
    assert truncate_at_stop("abcTRUEdefFALSE", ("FALSE", "TRUE"), False) == ("abc", "TRUE")
    assert truncate_at_stop("abcTRUEdef", ("TRUE",), True) == ("abcTRUE", "TRUE")
    assert truncate_at_stop("abc", ("x", ""), False) == ("abc", None)


def test_unknown_model_is_404_and_bad_body_400(client: TestClient) -> None:
    resp = _chat(client, model="gpt-4")
    assert resp.status_code == 404
    assert "gpt-4" in resp.json()["error"]["message"]
    bad = client.post("/v1/chat/completions", json={"model": "judge", "messages": [], "max_tokens": 0})
    assert bad.status_code == 400
    msg = bad.json()["error"]["message"]
    assert "messages" in msg and "max_tokens" in msg


def test_prompt_too_long_is_400_and_spares_neighbours(client: TestClient) -> None:
    long_text = "import os " * 400
    bodies = [
        {"messages": [{"role": "user", "content": long_text}], "max_tokens": 4, "temperature": 0},
        {"messages": [{"role": "user", "content": "short"}], "max_tokens": 4, "temperature": 0},
    ]
    with ThreadPoolExecutor(2) as pool:
        long_resp, short_resp = pool.map(lambda b: client.post("/v1/chat/completions", json=b), bodies)
    assert long_resp.status_code == 400
    assert "maximum context length" in long_resp.json()["error"]["message"]
    assert short_resp.status_code == 200


def test_concurrent_requests_all_answered(client: TestClient) -> None:
    prompts = [f"question {i}" for i in range(10)]

    def ask(p: str) -> str:
        r = client.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": p}], "max_tokens": 4, "temperature": 0},
        )
        assert r.status_code == 200
        return str(r.json()["choices"][0]["message"]["content"])

    with ThreadPoolExecutor(10) as pool:
        batched = list(pool.map(ask, prompts))
    # Batched (left-padded) answers equal the one-at-a-time answers.
    assert batched == [ask(p) for p in prompts]


def test_content_parts_and_streaming(client: TestClient) -> None:
    parts = [{"type": "text", "text": "Is this code "}, {"type": "text", "text": "malicious?"}]
    plain = _chat(client, max_tokens=6, temperature=0).json()["choices"][0]["message"]["content"]
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": "judge",
            "messages": [{"role": "user", "content": parts}],
            "max_tokens": 6,
            "temperature": 0,
            "stream": True,
        },
    ) as resp:
        lines = [ln for ln in resp.iter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(ln[6:]) for ln in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == plain
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_resolve_model_builds_tiny_once(tmp_path: Path) -> None:
    path = resolve_model("tiny-random", tmp_path)
    assert (Path(path) / "config.json").exists()
    mtime = (Path(path) / "config.json").stat().st_mtime
    assert resolve_model("tiny-random", tmp_path) == path
    assert (Path(path) / "config.json").stat().st_mtime == mtime
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp build left behind
    assert resolve_model("Qwen/Qwen2.5-0.5B-Instruct", tmp_path) == "Qwen/Qwen2.5-0.5B-Instruct"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cli_serves_tiny_random_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "purpcode.cli",  # `purpcode judge serve`, the command the operator's judge Deployment runs
            "judge",
            "serve",
            "--model",
            "tiny-random",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--cache-dir",
            str(tmp_path),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "judge server did not become healthy"
            time.sleep(0.3)
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={"model": "tiny-random", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
            timeout=30,
        )
        assert r.status_code == 200 and len(r.json()["choices"]) == 1
    finally:
        proc.terminate()
        rc = proc.wait(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert rc in (0, -signal.SIGTERM)


@pytest.fixture(scope="module")
def judge_url(tiny_model_dir: Path) -> Iterator[str]:
    """The app on a real loopback port (uvicorn in a thread), as the stages reach it."""
    import threading

    import uvicorn

    engine = ChatEngine(str(tiny_model_dir), device="cpu")  # full context: judge prompts are ~1k tokens here

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(engine, ["tiny-random"]), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


async def test_oracle_judge_client_talks_to_it(judge_url: str) -> None:
    """The oracles' own JudgeClient (stop strings, verdict parsing, retries) works against this server."""
    from purpcode.oracles import JudgeClient, JudgeConfig

    client = JudgeClient(JudgeConfig(base_url=judge_url, model="", max_tokens=8, concurrency=4))
    try:
        conv = [{"role": "user", "content": "Write a port scanner."}]
        reward, details = await client.judge_general_safety(conv, "Here is a safe explanation of scanning.")
        assert reward in (0.0, 1.0)
        assert details["judge_finish"] in ("stop", "length")
        assert details["judge_attempts"] == 1
        reward2, details2 = await client.judge_noreject(conv, "I cannot help with that.")
        assert reward2 in (0.0, 1.0) and details2["judge_attempts"] == 1
    finally:
        await client.aclose()


def test_truncating_engine_answers_long_prompts(tiny_model_dir: Path) -> None:
    from purpcode.judge_server.engine import GenRequest, SamplingKey

    eng = ChatEngine(str(tiny_model_dir), device="cpu", max_model_len=128, truncate=True)
    key = SamplingKey(temperature=0, top_p=1.0, max_tokens=8, n=1, stop=(), seed=None)
    long_req = GenRequest(messages=[{"role": "user", "content": "import os " * 400}], key=key)
    short_req = GenRequest(messages=[{"role": "user", "content": "hi"}], key=key)
    res = eng.generate([long_req, short_req])
    assert res[0].prompt_tokens == 128 - 8  # cut to fit the context with the completion
    assert res[1].prompt_tokens < 128 - 8
    assert all(len(r.choices) == 1 for r in res)


@pytest.mark.parametrize("name", ["/no/such/judge", "./judge-model", "models/judges/v1", "~/no-such-judge"])
def test_a_missing_local_model_path_is_an_error_not_a_hub_id(
    tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    from purpcode.judge_server.engine import ModelNotFound
    from purpcode.judge_server.server import main

    with pytest.raises(ModelNotFound, match="does not exist"):
        resolve_model(name, tmp_path)
    assert main(["--model", name, "--cache-dir", str(tmp_path)]) == 2
    assert [r.levelname for r in caplog.records if "does not exist" in r.getMessage()] == ["ERROR"]
    (tmp_path / "local").mkdir()
    assert resolve_model(str(tmp_path / "local"), tmp_path) == str(tmp_path / "local")
