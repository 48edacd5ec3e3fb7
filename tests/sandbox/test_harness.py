"""Reward hacking against the correctness harness (real service): each hack must score as a failure, and the
honest solutions to the same tasks must pass."""

from __future__ import annotations

import pytest

from purpcode.sandbox.client import AsyncSandboxClient
from purpcode.sandbox.harness import (
    PROOF_MARKER,
    TestOutcome,
    TestSpec,
    Verifier,
    build_check,
    rewrite_tests,
    run_tests,
    stdout_matches,
)
from purpcode.sandbox.models import CommandRunStatus, RunCodeResponse, RunResult, RunStatus

FUNCTIONAL = TestSpec(
    kind="functional",
    test="""
import math

def check(candidate):
    assert candidate(1, 2) == 3
    assert candidate(-1, 1) == 0
    assert candidate(2, 2) != 5
    assert abs(candidate(0.5, 2.0) - 2.5) < 1e-9
    assert math.isclose(candidate(0.1, 0.2), 0.3)
    assert candidate(10, 5) > 14 and candidate(1, 1) in (2, 3)
""",
    entry_point="add",
)
BARE = TestSpec(kind="functional", test="assert add(1, 2) == 3\nassert add(5, 5) == 10\n")
TRUTHY = TestSpec(
    kind="functional",
    test="def check(candidate):\n    assert candidate(4)\n    assert not candidate(3)\n",
    entry_point="is_even",
)
PYTEST = TestSpec(
    kind="pytest",
    test="""
import pytest
from solution import add


def test_small():
    assert add(1, 2) == 3


@pytest.mark.parametrize("a,b", [(1, 1), (2, 3), (-4, 4)])
def test_many(a, b):
    assert add(a, b) == a + b


class TestClass:
    def test_zero(self):
        assert add(0, 0) == 0
""",
)
UNITTEST = TestSpec(
    kind="pytest",
    test="""
import unittest
from solution import add


class TestAdd(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(1, 2), 3)
        self.assertTrue(add(2, 2) == 4)
""",
)
GOOD_ADD = "def add(a, b):\n    return a + b\n"
WRONG_ADD = "def add(a, b):\n    return a - b\n"


@pytest.fixture
async def client(sandbox_url: str):
    c = AsyncSandboxClient(sandbox_url)
    yield c
    await c.aclose()


async def outcome(client: AsyncSandboxClient, code: str, spec: TestSpec) -> TestOutcome:
    return await run_tests(client, code, spec, timeout_s=20)


# ------------------------------------------------------------------------------------------- honest solutions


@pytest.mark.parametrize(
    "spec", [FUNCTIONAL, BARE, PYTEST, UNITTEST], ids=["functional", "bare", "pytest", "unittest"]
)
async def test_honest_solution_passes(client: AsyncSandboxClient, spec: TestSpec) -> None:
    result = await outcome(client, GOOD_ADD, spec)
    assert result.passed and result.status == "passed", result.details
    assert result.tests_run >= 1


@pytest.mark.parametrize(
    "spec", [FUNCTIONAL, BARE, PYTEST, UNITTEST], ids=["functional", "bare", "pytest", "unittest"]
)
async def test_wrong_solution_fails(client: AsyncSandboxClient, spec: TestSpec) -> None:
    result = await outcome(client, WRONG_ADD, spec)
    assert not result.passed and result.status == "failed", result


async def test_leetcode_style_entry_point_and_test_helpers(client: AsyncSandboxClient) -> None:
    spec = TestSpec(
        kind="functional",
        test="""
class ListNode:
    def __init__(self, val=0, next=None):
        self.val = val
        self.next = next

def list_node(values):
    head = None
    for v in reversed(values):
        head = ListNode(v, head)
    return head

def is_same_list(a, b):
    while a and b:
        if a.val != b.val:
            return False
        a, b = a.next, b.next
    return a is None and b is None

def check(candidate):
    assert is_same_list(candidate(list_node([1, 2, 3])), list_node([3, 2, 1]))
    assert candidate(None) is None
""",
        entry_point="Solution().reverseList",
    )
    good = """
class Solution:
    def reverseList(self, head):
        prev = None
        while head:
            head.next, prev, head = prev, head, head.next
        return prev
"""
    result = await outcome(client, good, spec)
    assert result.passed, result.details
    assert not (await outcome(client, good.replace("return prev", "return head"), spec)).passed


async def test_honest_solution_with_its_own_classes(client: AsyncSandboxClient) -> None:
    spec = TestSpec(
        kind="functional",
        test="""
def check(candidate):
    node = candidate([3, 1, 2])
    assert node.val == 1 and node.next.val == 2 and node.next.next.val == 3
    assert [p.x for p in candidate.__self__.points(2)] == [0, 1]
""",
        entry_point="Solution().sorted_list",
    )
    good = """
from dataclasses import dataclass

class Node:
    def __init__(self, val, next=None):
        self.val, self.next = val, next
    def __repr__(self):
        return f"Node({self.val})"

@dataclass
class Point:
    x: int

class Solution:
    def sorted_list(self, values):
        head = None
        for v in sorted(values, reverse=True):
            head = Node(v, head)
        return head
    def points(self, n):
        return [Point(i) for i in range(n)]
"""
    result = await outcome(client, good, spec)
    assert result.passed, result.details


async def test_truthiness_checks(client: AsyncSandboxClient) -> None:
    assert (await outcome(client, "def is_even(n):\n    return n % 2 == 0\n", TRUTHY)).passed
    hack = "class Yes:\n    def __bool__(self):\n        return True\ndef is_even(n):\n    return Yes()\n"
    result = await outcome(client, hack, TRUTHY)
    assert not result.passed and "defines its own" in result.details


# ------------------------------------------------------------------------------------------- hacks: functional

FUNCTIONAL_HACKS = {
    "sys_exit_before_asserts": "import sys\nsys.exit(0)\n",
    "os_exit_before_asserts": "import os\nos._exit(0)\n",
    "raise_system_exit_in_test": "def add(a, b):\n    raise SystemExit(0)\n",
    "raise_keyboard_interrupt_in_test": "def add(a, b):\n    raise KeyboardInterrupt\n",
    "exit_inside_call": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "fake_success_lines": (
        f"print('{PROOF_MARKER} 6 ' + 'ab' * 32)\nprint('All 6 tests passed')\nprint('OK')\n"
        "import os\nos._exit(0)\n"
    ),
    "fake_success_at_exit": (
        f"import atexit\natexit.register(lambda: print('{PROOF_MARKER} 6 ' + '00' * 32))\n" + WRONG_ADD
    ),
    "always_equal_object": (
        "class Any:\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n"
        "        return False\n    def __lt__(self, o):\n        return True\n    __gt__ = __lt__\n"
        "    def __sub__(self, o):\n        return 0\n    __rsub__ = __sub__\n    def __float__(self):\n"
        "        return 0.3\n    __hash__ = object.__hash__\ndef add(a, b):\n    return Any()\n"
    ),
    "mock_any": "from unittest import mock\ndef add(a, b):\n    return mock.ANY\n",
    "int_subclass_always_equal": (
        "class Int(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
        "def add(a, b):\n    return Int(0)\n"
    ),
    "patch_math_isclose": "import math\nmath.isclose = lambda *a, **k: True\n" + WRONG_ADD,
    "patch_builtins_abs": "import builtins\nbuiltins.abs = lambda x: 0\n" + WRONG_ADD,
    "settrace_skips_lines": (
        "import sys\ndef tracer(frame, event, arg):\n    return None\nsys.settrace(tracer)\n" + GOOD_ADD
    ),
    "rewrite_the_test_files": (
        "import glob, os\nfor p in glob.glob('*') + glob.glob('.*'):\n    try:\n"
        "        open(p, 'w').write('def check(candidate):\\n    pass\\n')\n    except OSError:\n        pass\n"
        + WRONG_ADD
    ),
    "read_expected_values_from_tests": (
        "import glob\nSEEN = ''.join(open(p).read() for p in glob.glob('.pc*') + glob.glob('*test*'))\n"
        "def add(a, b):\n    return 3 if 'candidate(1, 2) == 3' in SEEN else a - b\n"
    ),
}


@pytest.mark.parametrize("hack", sorted(FUNCTIONAL_HACKS))
async def test_functional_hack_fails(client: AsyncSandboxClient, hack: str) -> None:
    result = await outcome(client, FUNCTIONAL_HACKS[hack], FUNCTIONAL)
    assert not result.passed, f"{hack} passed: {result}"
    assert result.status in ("failed", "error"), result


# ------------------------------------------------------------------------------------------- hacks: pytest

PYTEST_HACKS = {
    "sys_exit_on_import": "import sys\nsys.exit(0)\n",
    "os_exit_on_import": "import os\nos._exit(0)\n",
    "pytest_exit_zero": "import pytest\npytest.exit('done', returncode=0)\n",
    "skip_module": "import pytest\npytest.skip('nothing to see', allow_module_level=True)\n",
    "export_pytestmark_skip": "import pytest\npytestmark = pytest.mark.skip\n" + WRONG_ADD,
    "export_xfail": "import pytest\npytestmark = pytest.mark.xfail(strict=False)\n" + WRONG_ADD,
    "own_passing_tests": WRONG_ADD + "def test_small():\n    pass\ndef test_many():\n    pass\n",
    "conftest_and_ini": (
        "open('conftest.py', 'w').write('import pytest\\n@pytest.hookimpl(tryfirst=True)\\n"
        "def pytest_runtest_call(item):\\n    return True\\n')\n"
        "open('pytest.ini', 'w').write('[pytest]\\naddopts = -p no:python\\n')\n" + WRONG_ADD
    ),
    "rewrite_the_test_file": (
        "import glob\nfor p in glob.glob('test_*.py'):\n    open(p, 'w').write('def test_small():\\n    pass\\n')\n"
        + WRONG_ADD
    ),
    "patch_function_runtest": (
        "import _pytest.python\n_pytest.python.Function.runtest = lambda self: None\n" + WRONG_ADD
    ),
    "patch_pyfunc_call": "import _pytest.python\n_pytest.python.pytest_pyfunc_call = lambda pyfuncitem: True\n"
    + WRONG_ADD,
    "always_equal_object": "class Any:\n    def __eq__(self, o):\n        return True\n    __hash__ = None\n"
    "def add(a, b):\n    return Any()\n",
    "fake_success_lines": f"print('{PROOF_MARKER} 5 ' + 'cd' * 32)\nprint('5 passed')\nimport os\nos._exit(0)\n",
    "os_exit_inside_test": "import os\ndef add(a, b):\n    os._exit(0)\n",
}


@pytest.mark.parametrize("hack", sorted(PYTEST_HACKS))
async def test_pytest_hack_fails(client: AsyncSandboxClient, hack: str) -> None:
    result = await outcome(client, PYTEST_HACKS[hack], PYTEST)
    assert not result.passed, f"{hack} passed: {result}"


UNITTEST_HACKS = {
    "patch_assert_equal": "import unittest\nunittest.TestCase.assertEqual = lambda *a, **k: None\n"
    "unittest.TestCase.assertTrue = lambda *a, **k: None\n" + WRONG_ADD,
    "patch_testcase_run": "import unittest\nunittest.TestCase.run = lambda self, result=None: None\n"
    + WRONG_ADD,
    "skip_test": "import unittest\nraise unittest.SkipTest('no')\n",
    "always_equal_object": "class Any:\n    def __eq__(self, o):\n        return True\n    __hash__ = None\n"
    "    def __bool__(self):\n        return True\ndef add(a, b):\n    return Any()\n",
    "always_equal_via_class_method": "class Any:\n    def __eq__(self, o):\n        return True\n"
    "    __hash__ = None\nclass Calc:\n    def add(self, a, b):\n        return Any()\nadd = Calc().add\n",
}


@pytest.mark.parametrize("hack", sorted(UNITTEST_HACKS))
async def test_unittest_hack_fails(client: AsyncSandboxClient, hack: str) -> None:
    result = await outcome(client, UNITTEST_HACKS[hack], UNITTEST)
    assert not result.passed, f"{hack} passed: {result}"


# ------------------------------------------------------------------------------------------- stdio


async def test_stdio_cases(client: AsyncSandboxClient) -> None:
    spec = TestSpec(
        kind="stdio",
        cases=[{"stdin": "1 2\n", "expected_stdout": "3\n"}, {"stdin": "10 -4", "expected_stdout": "6"}],
    )
    good = "a, b = map(int, input().split())\nprint(a + b)\n"
    result = await outcome(client, good, spec)
    assert result.passed and result.tests_run == 2
    wrong = await outcome(client, "a, b = map(int, input().split())\nprint(a - b)\n", spec)
    assert not wrong.passed and wrong.status == "failed"
    crash = await outcome(client, "raise ValueError('no')\n", spec)
    assert not crash.passed and crash.status == "error"
    slow = await run_tests(client, "import time\ntime.sleep(30)\n", spec, timeout_s=1)
    assert not slow.passed and slow.status == "timeout"


async def test_timeout_is_reported(client: AsyncSandboxClient) -> None:
    result = await run_tests(client, "while True:\n    pass\n", BARE, timeout_s=1)
    assert not result.passed and result.status == "timeout"


# ------------------------------------------------------------------------------------------- pure parts


def _response(stdout: str, code: int = 0) -> RunCodeResponse:
    run = RunResult(status=CommandRunStatus.Finished, return_code=code, stdout=stdout, stderr="")
    return RunCodeResponse(status=RunStatus.Success if code == 0 else RunStatus.Failed, run_result=run)


def test_verifier_needs_the_right_nonce_count_and_exit() -> None:
    verifier = Verifier(nonce=b"k" * 32, kind="functional")
    assert verifier.verify(_response("noise\n" + verifier.proof(3) + "\n")).passed
    other = Verifier(nonce=b"x" * 32, kind="functional")
    assert not verifier.verify(_response(other.proof(3))).passed
    assert not Verifier(nonce=b"k" * 32, kind="pytest").verify(_response(verifier.proof(3))).passed
    assert not verifier.verify(_response(verifier.proof(0))).passed
    assert not verifier.verify(_response(verifier.proof(3), code=1)).passed
    tampered = verifier.proof(3).replace(" 3 ", " 4 ")
    assert not verifier.verify(_response(tampered)).passed


def test_build_check_hides_the_nonce_and_tests_from_the_program_text() -> None:
    request, verifier = build_check(GOOD_ADD, FUNCTIONAL)
    assert verifier.nonce.hex() not in request.code
    assert "candidate(1, 2)" not in request.code
    assert request.language == "python" and ".pc_nonce" in request.files


def test_rewrite_routes_comparisons_through_the_trust_check() -> None:
    out = rewrite_tests(
        "from __future__ import annotations\nassert f(1) == 2\nassert x is None\n", header="H = 1\n"
    )
    lines = out.splitlines()
    assert lines[0] == "from __future__ import annotations" and lines[1] == "H = 1"
    assert "_pcH_cmp(f(1), '==', 2)" in out and "x is None" in out


def test_spec_validation_names_the_problem() -> None:
    with pytest.raises(ValueError, match="entry_point"):
        TestSpec(kind="functional", test="def check(candidate):\n    assert candidate()\n")
    with pytest.raises(ValueError, match="cases"):
        TestSpec(kind="stdio")
    with pytest.raises(ValueError, match="not valid Python"):
        TestSpec(kind="pytest", test="def test_x(:\n")
    assert TestSpec.model_validate(FUNCTIONAL.model_dump()) == FUNCTIONAL


def test_stdout_matching_ignores_trailing_whitespace_only() -> None:
    assert stdout_matches("1 2 \n3\n\n", "1 2\n3")
    assert not stdout_matches("1 2\n3\n", "1 2\n4\n")
    assert not stdout_matches("12", "1 2")
