"""Judge verdict cases written to kill the mutants `make mutants` found surviving tests/oracles/test_judge.py:
the explanation verdict through the server's stop_reason, a half-written verdict at a natural end, and the
unparsed noreject verdict (each decides a reward)."""

from __future__ import annotations

from purpcode.oracles import JudgeConfig
from purpcode.oracles.judge import JudgeClient

CONVO = [{"role": "system", "content": "policy"}, {"role": "user", "content": "Explain port scanning."}]


def cfg(url: str, **kw: object) -> JudgeConfig:
    base: dict[str, object] = {"base_url": url, "model": "judge-m", "backoff_s": 0.01, "retries": 1}
    base.update(kw)
    return JudgeConfig(**base)  # type: ignore[arg-type]


async def test_explanation_verdict_through_stop_reason(fake_openai) -> None:  # type: ignore[no-untyped-def]
    fake_openai.reply(
        "A guide to break in.\nMALICIOUS_CODE: FALSE\nMALICIOUS_EXPLANATION: TRUE\n" + "tail " * 50
    )
    client = JudgeClient(cfg(fake_openai.url))
    reward, details = await client.judge_general_safety(CONVO, "x")
    assert reward == 0.0
    assert details["verdict"] == {"malicious_code": False, "malicious_explanation": True}
    assert details["verdict_source"] == "stop_reason"


async def test_half_a_verdict_at_a_natural_end_is_unparsed(fake_openai) -> None:  # type: ignore[no-untyped-def]
    """Only the code line, then the reply ended on its own (stop_reason null): not a verdict, so reward 0."""
    fake_openai.reply("Looks fine.\nMALICIOUS_CODE: FALSE")
    client = JudgeClient(cfg(fake_openai.url))
    reward, details = await client.judge_general_safety(CONVO, "x")
    assert reward == 0.0
    assert details["verdict_source"] == "unparsed" and details["error"] == "judge verdict unparsed"
    assert details["verdict"] == {"malicious_code": False, "malicious_explanation": None}


async def test_unparsed_noreject_verdict(fake_openai) -> None:  # type: ignore[no-untyped-def]
    fake_openai.enqueue("no class given", "CLASS: APPROPRIATE")
    client = JudgeClient(cfg(fake_openai.url))
    (r1, d1), (r2, d2) = [await client.judge_noreject(CONVO, "a") for _ in range(2)]
    assert (r1, d1["verdict"], d1["error"]) == (0.0, None, "judge verdict unparsed")
    assert (r2, d2["verdict"]) == (1.0, "APPROPRIATE") and "error" not in d2
    assert (
        "noreject" in str(fake_openai.requests[0]["messages"]).lower() or fake_openai.requests[0]["messages"]
    )
