"""Loaders for public benchmarks in their published formats, mapped to TaskRows with the oracle that scores them.

The user supplies the files (nothing is downloaded):
- CyberSecEval instruct (`instruct.json`: a JSON list with `test_case_prompt`, `language`, `cwe_identifier`, ...):
  the Python cases become codesec rows (our analyzers read Python).
- XSTest (`xstest_prompts.csv`: `id, prompt, type, label, focus, note`; the v2 file without `label` marks unsafe
  prompts by a `contrast_` type): the safe prompts become noreject rows (over-refusal).
- HumanEval+ / MBPP+ (EvalPlus `HumanEvalPlus.jsonl` / `MbppPlus.jsonl`: `task_id, prompt, entry_point,
  canonical_solution, base_input, plus_input, atol` and for HumanEval `test`): correctness rows whose functional
  check runs the original `check()` where there is one and compares the answer with the canonical solution on every
  base and plus input (EvalPlus's differential testing). The Hugging Face `evalplus/mbppplus` layout (`code`,
  `test`, `test_imports`) is read too.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from purpcode.data.schema import Message, TaskRow
from purpcode.evaluation.reference_suites import LOADERS as REFERENCE_LOADERS
from purpcode.evaluation.reference_suites import REFERENCE_KINDS

CODE_PROMPT = (
    "Please provide a self-contained Python script that solves the following problem in a markdown code block:\n"
    "```\n{prompt}\n```"
)


class BenchmarkFormatError(ValueError):
    """A benchmark file does not have the published shape (names the file, the record and the field)."""


def _user(text: str) -> list[Message]:
    return [Message(role="user", content=text)]


def load_cyberseceval_instruct(path: Path) -> list[TaskRow]:
    """CyberSecEval 'instruct' secure-code-generation cases (Python only) -> codesec rows."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise BenchmarkFormatError(f"{path}: not JSON ({err.msg} at line {err.lineno})") from err
    if not isinstance(data, list):
        raise BenchmarkFormatError(f"{path}: expected a JSON list of test cases (CyberSecEval instruct.json)")
    rows = []
    for i, case in enumerate(data):
        if not isinstance(case, dict) or not isinstance(case.get("test_case_prompt"), str):
            raise BenchmarkFormatError(f"{path}: case {i} has no string 'test_case_prompt'")
        if str(case.get("language", "python")).lower() != "python":
            continue
        cwe = case.get("cwe_identifier")
        cwe = cwe if isinstance(cwe, str) and re.fullmatch(r"CWE-\d+", cwe) else None
        rows.append(
            TaskRow(
                task_id=f"bench/cyberseceval-instruct/{i:05d}",
                messages=_user(case["test_case_prompt"]),
                oracle="codesec",
                ground_truth={
                    "cwe": [cwe] if cwe else [],
                    "detectors": [str(case["pattern_id"])] if case.get("pattern_id") else [],
                },
                source="benchmark:cyberseceval-instruct",
                strategy=str(case.get("variant", "")),
                cwe=cwe,
            )
        )
    return rows


def load_xstest(path: Path) -> list[TaskRow]:
    """XSTest safe prompts (a helpful model must answer them) -> noreject rows."""
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        fields = set(reader.fieldnames or [])
        if "prompt" not in fields:
            raise BenchmarkFormatError(
                f"{path}: no 'prompt' column (XSTest CSV: id, prompt, type, label, ...)"
            )
        rows = []
        for i, rec in enumerate(reader):
            label = (rec.get("label") or "").strip().lower()
            kind = (rec.get("type") or "").strip()
            safe = label == "safe" if label else not kind.startswith("contrast")
            if not safe or not (rec.get("prompt") or "").strip():
                continue
            rid = (rec.get("id") or rec.get("id_v2") or str(i)).strip()
            rows.append(
                TaskRow(
                    task_id=f"bench/xstest/{rid}",
                    messages=_user(rec["prompt"].strip()),
                    oracle="noreject",
                    source="benchmark:xstest",
                    strategy=kind,
                )
            )
    return rows


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise BenchmarkFormatError(f"{path}:{lineno}: not valid JSON ({err.msg})") from err
        if not isinstance(obj, dict):
            raise BenchmarkFormatError(f"{path}:{lineno}: expected a JSON object per line")
        out.append(obj)
    return out


_DIFF_TEST = """
import copy as _pc_copy
import json as _pc_json
import math as _pc_math

_pc_ns = {{}}
exec({reference!r}, _pc_ns)
_pc_reference = _pc_ns[{entry_point!r}]
_pc_inputs = _pc_json.loads({inputs!r})
_pc_atol = {atol!r}


def _pc_same(out, exp):
    if isinstance(exp, float) or isinstance(out, float):
        if not isinstance(out, (int, float)) or not isinstance(exp, (int, float)):
            return False
        if _pc_math.isnan(exp):
            return _pc_math.isnan(out)
        return _pc_math.isclose(out, exp, rel_tol=1e-6, abs_tol=max(_pc_atol, 1e-9))
    if isinstance(exp, (list, tuple)) and isinstance(out, (list, tuple)):
        return type(out) is type(exp) and len(out) == len(exp) and all(
            _pc_same(a, b) for a, b in zip(out, exp)
        )
    return out == exp


def check(candidate):
{base_call}    for args in _pc_inputs:
        expected = _pc_reference(*_pc_copy.deepcopy(args))
        assert _pc_same(candidate(*_pc_copy.deepcopy(args)), expected), f"wrong answer for input {{args!r:.200}}"
"""


def _evalplus_row(rec: dict[str, Any], i: int, path: Path, kind: str, max_inputs: int | None) -> TaskRow:
    for key in ("task_id", "prompt", "entry_point"):
        if not isinstance(rec.get(key), str):
            raise BenchmarkFormatError(f"{path}: record {i} has no string {key!r} (EvalPlus format)")
    entry, prompt = rec["entry_point"], rec["prompt"]
    canonical = str(rec.get("canonical_solution") or "")
    reference = canonical if re.search(rf"def\s+{re.escape(entry)}\s*\(", canonical) else prompt + canonical
    inputs = [*(rec.get("base_input") or []), *(rec.get("plus_input") or [])]
    if max_inputs is not None:
        inputs = inputs[:max_inputs]
    base_test = rec.get("test") if isinstance(rec.get("test"), str) else ""
    if not inputs and not base_test:
        raise BenchmarkFormatError(f"{path}: record {i} ({rec['task_id']}) has neither inputs nor a test")
    pre, base_call = "", ""
    if base_test:
        # The original HumanEval check(candidate), renamed so ours can call it first.
        pre = re.sub(r"\bdef\s+check\s*\(", "def _pc_base_check(", base_test) + "\n"
        base_call = "    _pc_base_check(candidate)\n"
    if inputs:
        if not canonical.strip():
            raise BenchmarkFormatError(
                f"{path}: record {i} ({rec['task_id']}) has inputs but no canonical_solution"
            )
        test = pre + _DIFF_TEST.format(
            reference=reference,
            entry_point=entry,
            inputs=json.dumps(inputs),
            atol=float(rec.get("atol") or 0.0),
            base_call=base_call,
        )
    else:
        test = pre + "\n\ndef check(candidate):\n" + base_call
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", rec["task_id"]).strip("-")
    return TaskRow(
        task_id=f"bench/{kind}/{slug}",
        messages=_user(CODE_PROMPT.format(prompt=prompt.strip())),
        oracle="correctness",
        ground_truth={"kind": "functional", "test": test, "entry_point": entry, "cases": []},
        source=f"benchmark:{kind}",
    )


def _mbpp_hf_row(rec: dict[str, Any], i: int, path: Path) -> TaskRow:
    """The Hugging Face evalplus/mbppplus layout: `prompt` text, `code`, `test_imports`, `test` (bare asserts)."""
    imports = rec.get("test_imports") or []
    test = "\n".join(str(x) for x in imports) + "\n" + str(rec["test"])
    example = (rec.get("test_list") or [""])[0]
    text = f"{rec.get('prompt', '')}\n{example}".strip()
    return TaskRow(
        task_id=f"bench/mbpp-plus/{rec.get('task_id', i)}",
        messages=_user(CODE_PROMPT.format(prompt=text)),
        oracle="correctness",
        ground_truth={"kind": "functional", "test": test, "entry_point": None, "cases": []},
        source="benchmark:mbpp-plus",
    )


def _load_evalplus(kind: str) -> Callable[[Path], list[TaskRow]]:
    def load(path: Path, max_inputs: int | None = None) -> list[TaskRow]:
        rows = []
        for i, rec in enumerate(_read_jsonl(path)):
            if (
                kind == "mbpp-plus"
                and "code" in rec
                and isinstance(rec.get("test"), str)
                and "entry_point" not in rec
            ):
                rows.append(_mbpp_hf_row(rec, i, path))
            else:
                rows.append(_evalplus_row(rec, i, path, kind, max_inputs))
        return rows

    return load


LOADERS: dict[str, Callable[[Path], list[TaskRow]]] = {
    "cyberseceval-instruct": load_cyberseceval_instruct,
    "xstest": load_xstest,
    "humaneval-plus": _load_evalplus("humaneval-plus"),
    "mbpp-plus": _load_evalplus("mbpp-plus"),
}


LOADERS.update(REFERENCE_LOADERS)  # cyberseceval-mitre, -frr, phtest, xscode, codelmsec, cweval
BENCHMARK_ORACLES: dict[str, str] = {
    "cyberseceval-instruct": "codesec",
    "xstest": "noreject",
    "humaneval-plus": "correctness",
    "mbpp-plus": "correctness",
    **REFERENCE_KINDS,
}


def load_benchmark(kind: str, path: str | Path) -> list[TaskRow]:
    """Rows of a benchmark file; a missing file or a wrong shape raises with the file named."""
    if kind not in LOADERS:
        raise ValueError(f"benchmark kind {kind!r}: use one of {', '.join(LOADERS)}")
    p = Path(path)
    if kind == "cweval" and p.is_dir():  # CWEval is published as a directory of task and test files
        return LOADERS[kind](p)
    if not p.is_file():
        raise FileNotFoundError(f"benchmark {kind}: file {p} not found (stages.evaluation.benchmarks[].path)")
    return LOADERS[kind](p)
