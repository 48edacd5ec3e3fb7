"""The correctness harness: turns (solution, tests) into a sandbox program whose pass is hard to fake.

Why: in RL the policy is rewarded for passing tests, so anything that makes a run *look* passed (exit 0 before the
asserts, `SystemExit` inside a test, patched `unittest`, printed "OK" lines, objects whose `__eq__` is always True,
rewritten test files) is a reward hack the policy will find. A check counts as passed here only when:

1. the program printed a proof line `PURPCODE_HARNESS_OK <count> <mac>`, where `mac` is an HMAC keyed by a per-run
   random nonce that reaches the sandbox in a file the harness reads and deletes before any solution code runs
   (so printing a success line without the nonce fails), and the harness only writes it after every test ran;
2. the process exited 0 right after it (the harness calls `os._exit(0)` itself);
3. at least one assertion (functional) or test (pytest) really ran, and for pytest every test function of the
   test file has a passed call phase (skips, xfails, deselection and collection errors all fail);
4. the comparisons in the *test* code went through a trust check: the test source is rewritten (AST) so that
   `==`, `<`, `in`, `assert x`, `not x`, ... refuse operands whose comparison/truth/arithmetic special methods are
   Python code from the solution (or any module outside a small stdlib allow-list, e.g. `unittest.mock.ANY`);
5. nothing the tests rely on was patched: builtins, `unittest`, `pytest` internals, `math`, `operator`, ... are
   snapshotted before the solution runs and compared after every test; tracing hooks (`sys.settrace`) are refused.

Residual risk (documented in docs/sandbox.md): solution and tests share one interpreter, so code that deliberately
walks the interpreter's memory (frames, `gc`, `ctypes`) for the nonce can still forge a pass; the defences above
target the hacks policies actually find, and the sandbox's isolation bounds what such code can do.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from purpcode.sandbox.client import AsyncSandboxClient
from purpcode.sandbox.models import CommandRunStatus, RunCodeRequest, RunCodeResponse, RunStatus

PROOF_MARKER = "PURPCODE_HARNESS_OK"
NONCE_FILE = ".pc_nonce"
META_FILE = ".pc_meta"
TESTS_FILE = ".pc_tests"
SOLUTION_FILE = "solution.py"
DETAILS_MAX_CHARS = 4000
# The names the rewritten test code calls; single underscore so `from solution import *` never overwrites them.
CMP_HELPER = "_pcH_cmp"
TRUTH_HELPER = "_pcH_truth"
ENTER_HELPER = "_pcH_enter"
RUNTIME_MODULE = "_pcH_rt"

TestKind = Literal["functional", "pytest", "stdio"]
OutcomeStatus = Literal["passed", "failed", "timeout", "error", "sandbox_error"]


class StdioCase(BaseModel):
    """One stdin/stdout pair: the program's stdout must equal `expected_stdout` (trailing spaces ignored)."""

    model_config = ConfigDict(extra="forbid")

    stdin: str = ""
    expected_stdout: str


class TestSpec(BaseModel):
    """What a correctness row's `ground_truth` holds (exactly `TestSpec.model_dump()`)."""

    __test__ = False  # not a pytest class
    model_config = ConfigDict(extra="forbid")

    kind: TestKind
    test: str | None = Field(
        default=None,
        description="functional: source defining `check(candidate)` or bare asserts; pytest: the test file "
        "(it may `from solution import ...`).",
    )
    entry_point: str | None = Field(
        default=None,
        description="functional: the name (or expression, e.g. 'Solution().twoSum') passed to `check`.",
    )
    cases: list[StdioCase] = Field(default_factory=list, description="stdio: the input/output pairs.")

    @model_validator(mode="after")
    def _fields_for_kind(self) -> TestSpec:
        if self.kind in ("functional", "pytest"):
            if not self.test or not self.test.strip():
                raise ValueError(f"kind {self.kind!r} needs `test` (the test source)")
            if self.cases:
                raise ValueError(f"kind {self.kind!r} takes no `cases` (those are for kind 'stdio')")
            try:
                tree = ast.parse(self.test)
            except SyntaxError as err:
                raise ValueError(f"`test` is not valid Python: {err.msg} (line {err.lineno})") from err
            if self.kind == "functional" and _defines(tree, "check") and not self.entry_point:
                raise ValueError(
                    "functional `test` defines check(candidate): set `entry_point` (the function name)"
                )
            if self.kind == "pytest" and not _pytest_test_names(tree):
                raise ValueError(
                    "pytest `test` defines no test_* function or Test* class with test_* methods"
                )
        else:
            if not self.cases:
                raise ValueError("kind 'stdio' needs at least one entry in `cases`")
            if self.test:
                raise ValueError("kind 'stdio' takes no `test` (put the pairs in `cases`)")
        return self


class TestOutcome(BaseModel):
    """The verdict of one check: `passed` is True only with a verified proof."""

    __test__ = False
    passed: bool
    status: OutcomeStatus
    details: str = ""
    tests_run: int = 0
    execution_time: float | None = None


@dataclass(frozen=True)
class Verifier:
    """The secret half of a harness program: decides pass/fail from the sandbox's response."""

    nonce: bytes
    kind: TestKind

    def proof(self, count: int) -> str:
        """The proof line the harness prints after `count` assertions/tests passed."""
        return f"{PROOF_MARKER} {count} {_mac(self.nonce, self.kind, count)}"

    def verify(self, response: RunCodeResponse) -> TestOutcome:
        """Pass only on exit 0 with a valid proof line; otherwise say why (timeout, error, failed)."""
        run = response.run_result
        details = _details(response)
        if response.status == RunStatus.SandboxError or run is None:
            return TestOutcome(passed=False, status="sandbox_error", details=details or response.message)
        if run.status == CommandRunStatus.TimeLimitExceeded:
            return TestOutcome(
                passed=False, status="timeout", details=details, execution_time=run.execution_time
            )
        count = self._proven_count(run.stdout or "")
        if count is not None and run.return_code == 0 and response.status == RunStatus.Success:
            return TestOutcome(
                passed=True, status="passed", details="", tests_run=count, execution_time=run.execution_time
            )
        stderr = run.stderr or ""
        status: OutcomeStatus = "error" if "PURPCODE_HARNESS_ERROR" in stderr else "failed"
        if count is None and run.return_code == 0:
            details = (
                "the program exited 0 without the harness proof (exit before the tests ran?)\n" + details
            )
        return TestOutcome(passed=False, status=status, details=details, execution_time=run.execution_time)

    def _proven_count(self, stdout: str) -> int | None:
        for line in reversed(stdout.splitlines()):
            if not line.startswith(PROOF_MARKER + " "):
                continue
            parts = line.split()
            if len(parts) != 3 or not parts[1].isdigit():
                continue
            count = int(parts[1])
            if count >= 1 and hmac.compare_digest(parts[2], _mac(self.nonce, self.kind, count)):
                return count
        return None


def _mac(nonce: bytes, kind: str, count: int) -> str:
    return hmac.new(nonce, f"{kind}:{count}".encode(), hashlib.sha256).hexdigest()


def _details(response: RunCodeResponse) -> str:
    run = response.run_result
    if run is None:
        return response.message[-DETAILS_MAX_CHARS:]
    text = (run.stderr or "").strip()
    if not text:
        text = (run.stdout or "").strip()
    if response.message:
        text = f"{response.message}\n{text}".strip()
    return text[-DETAILS_MAX_CHARS:]


# ----------------------------------------------------------------------------------------------- test rewriting


def _defines(tree: ast.Module, name: str) -> bool:
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name for node in tree.body
    )


def _pytest_test_names(tree: ast.Module) -> list[str]:
    """Top-level test functions and Test* classes of a test file: each must have a passed test."""
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            names.append(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for sub in node.body:
                if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef) and sub.name.startswith("test"):
                    names.append(f"{node.name}::{sub.name}")
    return names


_CMP_OPS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}


class _TrustRewriter(ast.NodeTransformer):
    """Routes the test code's comparisons and truth tests through the harness's trust checks."""

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        if any(type(op) not in _CMP_OPS for op in node.ops):
            return node  # `is` / `is not` compare identity: nothing to fake
        args: list[ast.expr] = [node.left]
        for op, right in zip(node.ops, node.comparators, strict=True):
            args.append(ast.Constant(_CMP_OPS[type(op)]))
            args.append(right)
        return ast.copy_location(
            ast.Call(func=ast.Name(CMP_HELPER, ast.Load()), args=args, keywords=[]),
            node,
        )

    def _truth(self, expr: ast.expr) -> ast.expr:
        if isinstance(expr, ast.BoolOp):
            expr.values = [self._truth(v) for v in expr.values]
            return expr
        if isinstance(expr, ast.UnaryOp) and isinstance(expr.op, ast.Not):
            expr.operand = self._truth(expr.operand)
            return expr
        return ast.copy_location(
            ast.Call(func=ast.Name(TRUTH_HELPER, ast.Load()), args=[expr], keywords=[]),
            expr,
        )

    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        self.generic_visit(node)
        # The outer call (flag True) counts the assertion: a pass needs at least one that really ran.
        inner = self._truth(node.test)
        node.test = ast.copy_location(
            ast.Call(func=ast.Name(TRUTH_HELPER, ast.Load()), args=[inner, ast.Constant(True)], keywords=[]),
            node.test,
        )
        return node

    def visit_If(self, node: ast.If) -> ast.AST:
        self.generic_visit(node)
        node.test = self._truth(node.test)
        return node

    def visit_While(self, node: ast.While) -> ast.AST:
        self.generic_visit(node)
        node.test = self._truth(node.test)
        return node

    def visit_IfExp(self, node: ast.IfExp) -> ast.AST:
        self.generic_visit(node)
        node.test = self._truth(node.test)
        return node

    def visit_comprehension(self, node: ast.comprehension) -> ast.AST:
        self.generic_visit(node)
        node.ifs = [self._truth(cond) for cond in node.ifs]
        return node


def rewrite_tests(source: str, *, header: str = "") -> str:
    """The test source with trust-checked comparisons, as source text (pytest re-reads the file)."""
    tree = ast.parse(source)
    tree = _TrustRewriter().visit(tree)
    if header:
        # After the docstring and `from __future__` imports, which must stay first.
        at = 0
        for node in tree.body:
            is_doc = at == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            if is_doc or (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
                at += 1
                continue
            break
        tree.body[at:at] = ast.parse(header).body
    ast.fix_missing_locations(tree)
    return ast.unparse(tree) + "\n"


# ----------------------------------------------------------------------------------------------- programs


def _runtime_source() -> str:
    return resources.files("purpcode.sandbox").joinpath("harness_runtime.py").read_text(encoding="utf-8")


def _b64(data: str | bytes) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def _program(
    kind: TestKind, meta: dict[str, object], files: dict[str, str], timeout_s: float
) -> tuple[RunCodeRequest, Verifier]:
    nonce = secrets.token_bytes(32)
    payload: dict[str, str | None] = {
        NONCE_FILE: _b64(nonce.hex()),
        META_FILE: _b64(json.dumps({"kind": kind, **meta})),
        **{name: _b64(text) for name, text in files.items()},
    }
    request = RunCodeRequest(
        code=_runtime_source() + "\n_pcH_main()\n",
        language="python",
        run_timeout=timeout_s,
        files=payload,
    )
    return request, Verifier(nonce=nonce, kind=kind)


def build_functional_check(
    solution: str, test_code: str, entry_point: str | None, *, timeout_s: float = 15.0
) -> tuple[RunCodeRequest, Verifier]:
    """A program running `solution`, then the (rewritten) test code, then `check(<entry_point>)` if defined."""
    test_filename = f"<tests-{secrets.token_hex(8)}>"
    meta: dict[str, object] = {"entry_point": entry_point, "test_filename": test_filename}
    return _program(
        "functional", meta, {SOLUTION_FILE: solution, TESTS_FILE: rewrite_tests(test_code)}, timeout_s
    )


def build_pytest_check(
    solution: str, test_code: str, *, timeout_s: float = 15.0
) -> tuple[RunCodeRequest, Verifier]:
    """A program running the test file under pytest with `solution.py` importable as `solution`."""
    tree = ast.parse(test_code)
    test_file = f"test_{secrets.token_hex(6)}.py"
    header = f"from {RUNTIME_MODULE} import {CMP_HELPER}, {TRUTH_HELPER}, {ENTER_HELPER}\n{ENTER_HELPER}()\n"
    meta: dict[str, object] = {"test_file": test_file, "required": _pytest_test_names(tree)}
    return _program(
        "pytest",
        meta,
        {SOLUTION_FILE: solution, test_file: rewrite_tests(test_code, header=header)},
        timeout_s,
    )


def stdout_matches(actual: str, expected: str) -> bool:
    """Line-wise equality ignoring trailing whitespace on each line and trailing blank lines."""

    def norm(text: str) -> list[str]:
        lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        return lines

    return norm(actual) == norm(expected)


async def _run_stdio(client: AsyncSandboxClient, code: str, spec: TestSpec, timeout_s: float) -> TestOutcome:
    import asyncio

    async def one(case: StdioCase) -> RunCodeResponse:
        return await client.run_code(
            RunCodeRequest(code=code, language="python", stdin=case.stdin, run_timeout=timeout_s)
        )

    responses = await asyncio.gather(*(one(case) for case in spec.cases))
    total_time = 0.0
    for i, (case, response) in enumerate(zip(spec.cases, responses, strict=True)):
        run = response.run_result
        if response.status == RunStatus.SandboxError or run is None:
            return TestOutcome(passed=False, status="sandbox_error", details=_details(response), tests_run=i)
        total_time += run.execution_time or 0.0
        if run.status == CommandRunStatus.TimeLimitExceeded:
            return TestOutcome(passed=False, status="timeout", details=f"case {i}: time limit", tests_run=i)
        if run.return_code != 0:
            return TestOutcome(
                passed=False,
                status="error",
                details=f"case {i}: exit {run.return_code}\n{_details(response)}",
                tests_run=i,
            )
        if not stdout_matches(run.stdout or "", case.expected_stdout):
            got = (run.stdout or "")[:500]
            return TestOutcome(
                passed=False,
                status="failed",
                details=f"case {i}: stdout differs\nexpected: {case.expected_stdout[:500]!r}\ngot: {got!r}",
                tests_run=i,
            )
    return TestOutcome(passed=True, status="passed", tests_run=len(spec.cases), execution_time=total_time)


def build_check(code: str, tests: TestSpec, *, timeout_s: float = 15.0) -> tuple[RunCodeRequest, Verifier]:
    """The harness program for a functional or pytest spec (stdio specs need no harness: see `run_tests`)."""
    if tests.kind == "functional":
        assert tests.test is not None
        return build_functional_check(code, tests.test, tests.entry_point, timeout_s=timeout_s)
    if tests.kind == "pytest":
        assert tests.test is not None
        return build_pytest_check(code, tests.test, timeout_s=timeout_s)
    raise ValueError("stdio specs are run case by case by run_tests(); there is no single harness program")


async def run_tests(
    client: AsyncSandboxClient, code: str, tests: TestSpec, timeout_s: float = 15.0
) -> TestOutcome:
    """Run `code` against `tests` in the sandbox and verify the result (the one call the oracles use).

    Unreachable service or a refused request raise (`SandboxClientError`, `httpx.HTTPError`); everything the
    code under test does (crash, hang, hack) comes back as a failed `TestOutcome`.
    """
    if tests.kind == "stdio":
        return await _run_stdio(client, code, tests, timeout_s)
    request, verifier = build_check(code, tests, timeout_s=timeout_s)
    response = await client.run_code(request)
    return verifier.verify(response)
