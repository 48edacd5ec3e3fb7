"""A small OpenAI-compatible chat server over transformers: the judge where vLLM cannot run (CPU, no GPU).

    purpcode judge serve --model tiny-random --port 8000
    python -m purpcode.judge_server --model Qwen/Qwen2.5-0.5B-Instruct --port 8000

It speaks the subset of the OpenAI API the oracles' judge client uses (`/v1/chat/completions` with messages,
max_tokens, temperature, top_p, stop, n, seed, stream; `/v1/models`; `/health`), so a stage cannot tell it from a
vLLM server. Import-light: torch and transformers load only when the server starts.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point of `purpcode judge serve` and `python -m purpcode.judge_server`."""
    from purpcode.judge_server.server import main as _main

    return _main(argv)


__all__ = ["main"]
