"""The HTTP side of the judge server: OpenAI-compatible routes and a batching queue in front of the engine.

Requests wait in one asyncio queue; a single worker drains everything queued, groups it by sampling settings and
runs each group as one `generate` call in a thread, so the event loop keeps accepting requests meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from purpcode.judge_server.engine import (
    GenRequest,
    GenResult,
    ModelNotFound,
    PromptTooLong,
    SamplingKey,
    resolve_model,
)

LOG = logging.getLogger("purpcode.judge_server")
MAX_N = 16
MAX_STOP = 8


class Engine(Protocol):
    """What the server needs from an engine (ChatEngine, or anything answering batches the same way)."""

    max_model_len: int

    def generate(self, requests: list[GenRequest]) -> list[GenResult]: ...


class ChatMessage(BaseModel):
    """One chat turn; content as a string or OpenAI content parts (text parts are joined)."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = ""

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(str(p.get("text", "")) for p in self.content if p.get("type", "text") == "text")


class ChatRequest(BaseModel):
    """The fields of /v1/chat/completions this server honours; other OpenAI fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = ""
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    n: int = Field(default=1, ge=1, le=MAX_N)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    include_stop_str_in_output: bool = False

    @field_validator("stop")
    @classmethod
    def _stops(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences")
        return v

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(s for s in self.stop if s)


class Batcher:
    """Queue requests; one worker runs them in groups of equal sampling settings, `max_batch` at a time."""

    def __init__(self, engine: Engine, max_batch: int = 16) -> None:
        self.engine = engine
        self.max_batch = max(1, max_batch)
        self._queue: asyncio.Queue[tuple[GenRequest, asyncio.Future[GenResult]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, req: GenRequest) -> GenResult:
        fut: asyncio.Future[GenResult] = asyncio.get_running_loop().create_future()
        await self._queue.put((req, fut))
        return await fut

    async def _run(self) -> None:
        while True:
            items = [await self._queue.get()]
            while not self._queue.empty():
                items.append(self._queue.get_nowait())
            groups: dict[SamplingKey, list[tuple[GenRequest, asyncio.Future[GenResult]]]] = {}
            for item in items:
                groups.setdefault(item[0].key, []).append(item)
            for group in groups.values():
                for start in range(0, len(group), self.max_batch):
                    await self._answer(group[start : start + self.max_batch])

    async def _answer(self, chunk: list[tuple[GenRequest, asyncio.Future[GenResult]]]) -> None:
        live = [(r, f) for r, f in chunk if not f.done()]  # a client that went away cancelled its future
        if not live:
            return
        try:
            results = await asyncio.to_thread(self.engine.generate, [r for r, _ in live])
        except PromptTooLong as err:
            # One long prompt must not fail its neighbours: answer them one by one.
            if len(live) > 1:
                for item in live:
                    await self._answer([item])
            elif not live[0][1].done():
                live[0][1].set_exception(err)
            return
        except (RuntimeError, ValueError, OSError) as err:
            for _, fut in live:
                if not fut.done():
                    fut.set_exception(err)
            return
        for (_, fut), res in zip(live, results, strict=True):
            if not fut.done():
                fut.set_result(res)


def _error(status: int, message: str, kind: str = "invalid_request_error") -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse(
        status_code=status,
        content={"error": {"message": message, "type": kind, "param": None, "code": status}},
    )


def create_app(engine: Engine, served_names: list[str], *, max_batch: int = 16) -> Any:
    """The FastAPI app: /v1/chat/completions, /v1/models, /health (and /healthz)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import StreamingResponse

    batcher = Batcher(engine, max_batch=max_batch)
    created = int(time.time())

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="purpcode judge", lifespan=lifespan)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_: Request, exc: RequestValidationError) -> Any:
        parts = [f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()]
        return _error(400, "; ".join(parts))

    @app.get("/health")
    @app.get("/healthz")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "created": created,
                    "owned_by": "purpcode",
                    "max_model_len": engine.max_model_len,
                }
                for name in served_names
            ],
        }

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest) -> Any:
        if body.model and body.model not in served_names:
            return _error(404, f"The model `{body.model}` does not exist.", "NotFoundError")
        max_tokens = body.max_completion_tokens or body.max_tokens or 256
        key = SamplingKey(
            temperature=body.temperature,
            top_p=body.top_p,
            max_tokens=max_tokens,
            n=body.n,
            stop=body.stops(),
            seed=body.seed,
        )
        req = GenRequest(
            messages=[{"role": m.role, "content": m.text()} for m in body.messages],
            key=key,
            include_stop=body.include_stop_str_in_output,
        )
        try:
            res = await batcher.submit(req)
        except PromptTooLong as err:
            return _error(400, str(err))
        except (RuntimeError, ValueError, OSError) as err:
            LOG.error("generation failed: %s", err)
            return _error(500, f"generation failed: {type(err).__name__}: {err}", "InternalServerError")
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        model = body.model or served_names[0]
        if body.stream:
            return StreamingResponse(_sse(rid, model, res), media_type="text/event-stream")
        completion_tokens = sum(c.completion_tokens for c in res.choices)
        return {
            "id": rid,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": c.text},
                    "finish_reason": c.finish_reason,
                    "stop_reason": c.stop_reason,
                    "logprobs": None,
                }
                for i, c in enumerate(res.choices)
            ],
            "usage": {
                "prompt_tokens": res.prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": res.prompt_tokens + completion_tokens,
            },
        }

    return app


async def _sse(rid: str, model: str, res: GenResult) -> AsyncIterator[str]:
    """Server-sent events in OpenAI's chunk format (the whole answer is ready: role, content, finish per choice)."""
    created = int(time.time())

    def chunk(index: int, delta: dict[str, str], finish: str | None, stop: str | None = None) -> str:
        choice = {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}
        if finish is not None:
            choice["stop_reason"] = stop
        body = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [choice],
        }
        return f"data: {json.dumps(body)}\n\n"

    for i, c in enumerate(res.choices):
        yield chunk(i, {"role": "assistant", "content": ""}, None)
        if c.text:
            yield chunk(i, {"content": c.text}, None)
        yield chunk(i, {}, c.finish_reason, c.stop_reason)
    yield "data: [DONE]\n\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Options of `purpcode judge serve` (a leading 'serve' word is accepted and dropped)."""
    if argv and argv[0] == "serve":
        argv = argv[1:]
    p = argparse.ArgumentParser(
        prog="purpcode judge serve",
        description="OpenAI-compatible chat server over transformers (CPU or GPU).",
    )
    p.add_argument(
        "--model", required=True, help="Hub id, model directory, or 'tiny-random' (built locally)."
    )
    p.add_argument(
        "--served-model-name",
        action="append",
        default=None,
        help="Name(s) clients use (default: the --model value). Repeat for several.",
    )
    p.add_argument("--host", default="0.0.0.0", help="Bind address (default 0.0.0.0, as vllm serve).")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--cache-dir", default=None, help="Where 'tiny-random' is built (default $PURPCODE_CACHE)."
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available).")
    p.add_argument(
        "--dtype", default=None, help="torch dtype name, e.g. bfloat16 (default: bf16 on GPU, fp32 CPU)."
    )
    p.add_argument("--max-model-len", type=int, default=None, help="Context cap (default: the model's).")
    p.add_argument(
        "--truncate-long-prompts",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Cut a prompt longer than the context in its middle (default), or with --no-truncate-long-prompts "
        "answer 400 as vLLM does. Small CPU judges have short contexts; one long prompt must not fail a stage.",
    )
    p.add_argument("--max-batch-size", type=int, default=16, help="Requests per generate call.")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
    p.add_argument("--log-level", default="info", help="A healthy server logs nothing above INFO.")
    return p.parse_args(argv)


def main(argv: list[str] | None = None, *, on_ready: Callable[[], None] | None = None) -> int:
    """Load the model, then serve until SIGINT/SIGTERM (uvicorn stops gracefully)."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import uvicorn

    from purpcode.judge_server.engine import ChatEngine

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        path = resolve_model(args.model, args.cache_dir)
    except ModelNotFound as err:
        LOG.error("%s", err)
        return 2
    try:
        engine = ChatEngine(
            path,
            device=args.device,
            dtype=args.dtype,
            max_model_len=args.max_model_len,
            truncate=args.truncate_long_prompts,
        )
    except OSError as err:
        LOG.error("cannot load model %r: %s", args.model, err)
        return 2
    names = args.served_model_name or [args.model]
    app = create_app(engine, names, max_batch=args.max_batch_size)
    LOG.info("judge server: model %s (%s) on %s:%d", args.model, engine.device, args.host, args.port)
    if on_ready:
        on_ready()
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0
