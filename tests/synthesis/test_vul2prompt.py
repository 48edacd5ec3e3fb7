"""Vul2Prompt drafts: each strategy's shape, the +-10 line context, and the ground truth a codesec row carries."""

from __future__ import annotations

from purpcode.data.rules import load_corpus
from purpcode.synthesis.vul2prompt import run_vul2prompt, seed_drafts

CODE = (
    "\n".join(
        [f"# filler {i}" for i in range(1, 16)]
        + [
            "import subprocess",
            "",
            "def ping(host):",
            "    cmd = 'ping -c 1 ' + host",
            "    return subprocess.check_output(cmd, shell=True, text=True)",
        ]
        + [f"# tail {i}" for i in range(1, 16)]
    )
    + "\n"
)
SEED = {
    "seed_id": "CWE-78/corpus/abc",
    "rule_id": "CWE-78",
    "origin": "corpus",
    "code": CODE,
    "lines": [20],
    "findings": [{"detector_id": "B602", "cwe": "CWE-78", "severity": "HIGH", "line": 20}],
}
STRATEGIES = ["general", "benign2vul", "vul2vul", "jailbreak", "multi-turn"]


def test_every_strategy_has_its_shape() -> None:
    rule = next(r for r in load_corpus() if r.id == "CWE-78")
    drafts = {d.strategy: d for d in seed_drafts(SEED, rule, STRATEGIES, 1)}
    assert set(drafts) == set(STRATEGIES)
    general = drafts["general"].messages()
    assert (
        len(general) == 1
        and "pinging it once" in general[0]["content"]
        and "```" not in general[0]["content"]
    )
    b2v = drafts["benign2vul"].messages()[-1]["content"]
    assert "# TODO" in b2v and "shell=True" not in b2v and "def ping(host):" in b2v
    v2v = drafts["vul2vul"].messages()[-1]["content"]
    assert "shell=True" in v2v
    # +-10 lines around the flagged line 20: lines 10..30 of the seed, nothing outside
    assert (
        "# filler 10" in v2v and "# filler 9\n" not in v2v and "# tail 10" in v2v and "# tail 11" not in v2v
    )
    jb = drafts["jailbreak"]
    assert (
        jb.wrapper != "{request}" and drafts["general"].instruction.split()[0] in jb.messages()[0]["content"]
    )
    mt = drafts["multi-turn"].messages()
    assert [m["role"] for m in mt] == ["user", "assistant", "user"] and "shell=True" in mt[-1]["content"]
    for d in drafts.values():
        assert d.set == "codesec" and d.cwe == "CWE-78" and d.seed_origin == "corpus"
        assert d.ground_truth == {
            "cwe": ["CWE-78"],
            "detectors": ["B602"],
            "seed_id": SEED["seed_id"],
            "rule": "CWE-78",
        }
        assert d.source() == "synthesis:corpus-seed:template"


def test_prompts_per_seed_use_different_templates() -> None:
    rules = {r.id: r for r in load_corpus()}
    drafts = run_vul2prompt([SEED], rules, ["general", "vul2vul"], 3)
    general = [d for d in drafts if d.strategy == "general"]
    assert len(general) == 3 and len({d.template for d in general}) == 3
    assert len({d.instruction for d in drafts if d.strategy == "vul2vul"}) == 3
