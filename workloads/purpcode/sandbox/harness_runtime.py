# The in-sandbox half of purpcode.sandbox.harness (stdlib + pytest only; sent as the program's source, with
# "_pcH_main()" appended). It reads and deletes its secret inputs before any solution code runs, runs the solution
# and the (trust-rewritten) tests, checks that nothing the tests rely on was patched, and only then prints the
# HMAC proof and leaves with os._exit(0). Any other way out (exception, sys.exit, os._exit, kill) has no proof.
# ruff: noqa
# mypy: ignore-errors
# (A standalone program for the jail's interpreter: closures over private interpreter hooks, not a typed module.)


def _pcH_main():
    # Only light modules here: every module this imports is paid by every check (see settings.DEFAULT_PRELOAD).
    import builtins
    import collections
    import json
    import linecache
    import operator
    import os
    import sys
    import threading
    import types

    try:
        from _sha256 import sha256
    except ImportError:
        from hashlib import sha256

    work = os.path.dirname(os.path.abspath(__file__))
    _write, _exit, _unlink, _gettrace, _getprofile = (
        os.write,
        os._exit,
        os.unlink,
        sys.gettrace,
        sys.getprofile,
    )
    _isinstance, _type, _id, _len, _bool, _repr = isinstance, type, id, len, bool, repr
    _excepthook_stream = sys.stderr
    _stdout = sys.stdout
    out_fd = os.dup(1)

    def take(name):
        path = os.path.join(work, name)
        with open(path, "rb") as fh:
            data = fh.read()
        _unlink(path)
        return data

    nonce = bytes.fromhex(take(".pc_nonce").decode())
    meta = json.loads(take(".pc_meta"))
    kind = meta["kind"]

    def say(tag, message):
        try:
            _stdout.flush()
        except BaseException:
            pass
        try:
            _excepthook_stream.write(f"\nPURPCODE_HARNESS_{tag}: {message}\n")
            _excepthook_stream.flush()
        except BaseException:
            _write(2, f"\nPURPCODE_HARNESS_{tag}: {message}\n".encode("utf-8", "replace"))

    def fail(message, error=False):
        say("ERROR" if error else "FAIL", message)
        _exit(1)

    def hmac_sha256(key, message):
        key = key.ljust(64, b"\0") if _len(key) <= 64 else sha256(key).digest().ljust(64, b"\0")
        inner = sha256(bytes(b ^ 0x36 for b in key) + message).digest()
        return sha256(bytes(b ^ 0x5C for b in key) + inner).hexdigest()

    def prove(count):
        mac = hmac_sha256(nonce, f"{kind}:{count}".encode())
        try:
            _stdout.flush()
        except BaseException:
            pass
        _write(out_fd, f"\nPURPCODE_HARNESS_OK {count} {mac}\n".encode())
        _exit(0)

    def tb(exc):
        import traceback

        return "".join(traceback.format_exception(_type(exc), exc, exc.__traceback__))[-3000:]

    # ------------------------------------------------------------------ trust: which objects may be compared

    test_files = set()
    trusted_classes = set()
    safe_types = {
        int,
        float,
        complex,
        bool,
        str,
        bytes,
        bytearray,
        _type(None),
        range,
        slice,
        _type(Ellipsis),
        _type(NotImplemented),
        memoryview,
    }
    # Value types of these stdlib modules compare by value; looked up only if the module is loaded at all.
    safe_by_module = {
        "decimal": ("Decimal",),
        "fractions": ("Fraction",),
        "datetime": ("date", "datetime", "time", "timedelta", "timezone"),
    }

    def lazily_safe(t):
        names = safe_by_module.get(getattr(t, "__module__", None))
        module = sys.modules.get(t.__module__) if names else None
        if module is not None and t.__name__ in names and getattr(module, t.__name__, None) is t:
            safe_types.add(t)
            return True
        return False

    sequences = (list, tuple, set, frozenset, collections.deque)
    container_types = {
        list,
        tuple,
        set,
        frozenset,
        dict,
        collections.deque,
        collections.OrderedDict,
        collections.defaultdict,
        collections.Counter,
    }
    trusted_modules = {
        "fractions",
        "collections",
        "enum",
        "functools",
        "ipaddress",
        "pathlib",
        "uuid",
        "numbers",
        "decimal",
        "_pydecimal",
        "datetime",
        "_pydatetime",
        "typing",
        "dataclasses",
        "_pytest.python_api",
        "abc",
    }
    roots = tuple(
        {
            os.path.realpath(p) + "/"
            for p in [os.path.dirname(os.__file__), *[q for q in sys.path if q.endswith("-packages")]]
        }
    )
    guarded_dunders = {
        "__eq__",
        "__ne__",
        "__lt__",
        "__le__",
        "__gt__",
        "__ge__",
        "__bool__",
        "__len__",
        "__contains__",
        "__add__",
        "__radd__",
        "__sub__",
        "__rsub__",
        "__mul__",
        "__rmul__",
        "__truediv__",
        "__rtruediv__",
        "__floordiv__",
        "__rfloordiv__",
        "__mod__",
        "__rmod__",
        "__divmod__",
        "__rdivmod__",
        "__pow__",
        "__rpow__",
        "__neg__",
        "__pos__",
        "__abs__",
        "__invert__",
        "__round__",
        "__trunc__",
        "__floor__",
        "__ceil__",
        "__float__",
        "__int__",
        "__index__",
        "__complex__",
        "__and__",
        "__rand__",
        "__or__",
        "__ror__",
        "__xor__",
        "__rxor__",
        "__lshift__",
        "__rlshift__",
        "__rshift__",
        "__rrshift__",
        "__matmul__",
        "__rmatmul__",
        "__instancecheck__",
        "__subclasscheck__",
    }
    c_level = (
        types.WrapperDescriptorType,
        types.MethodDescriptorType,
        types.BuiltinFunctionType,
        types.MethodWrapperType,
        types.ClassMethodDescriptorType,
        types.GetSetDescriptorType,
        types.MemberDescriptorType,
    )

    def method_ok(value):
        if value is None or _isinstance(value, c_level):
            return True
        if _isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        code = getattr(value, "__code__", None)
        if code is None:
            return False
        if code.co_filename in test_files:
            return True
        return getattr(value, "__module__", None) in trusted_modules and code.co_filename.startswith(roots)

    def type_ok(t):
        for klass in t.__mro__:
            if klass is object or klass in safe_types or klass in container_types or klass in trusted_classes:
                continue
            attrs = klass.__dict__
            for name in guarded_dunders:
                if name in attrs and not method_ok(attrs[name]):
                    return False
        return True

    def untrusted(value):
        """The first object inside `value` whose comparison behaviour is not the test's or the language's."""
        stack = [value]
        seen = set()
        budget = 5_000_000
        while stack:
            v = stack.pop()
            t = _type(v)
            if t in safe_types:
                continue
            budget -= 1
            if budget < 0:
                return v
            if (
                t not in container_types
                and t not in trusted_classes
                and not lazily_safe(t)
                and not type_ok(t)
            ):
                return v
            if _isinstance(v, dict):
                if _id(v) not in seen:
                    seen.add(_id(v))
                    stack.extend(dict.keys(v))
                    stack.extend(dict.values(v))
            elif _isinstance(v, sequences):
                if _id(v) not in seen:
                    seen.add(_id(v))
                    for base in sequences:
                        if _isinstance(v, base):
                            stack.extend(base.__iter__(v))
                            break
        return None

    def describe(v):
        t = _type(v)
        return f"an object of type {t.__module__}.{t.__qualname__}"

    ops = {
        "==": operator.eq,
        "!=": operator.ne,
        "<": operator.lt,
        "<=": operator.le,
        ">": operator.gt,
        ">=": operator.ge,
        "in": lambda a, b: operator.contains(b, a),
        "not in": lambda a, b: not operator.contains(b, a),
    }
    state = {"asserts": 0, "last": ""}

    def guard():
        if _gettrace() is not None or _getprofile() is not None:
            raise AssertionError("PURPCODE_HARNESS: a tracing/profiling hook is active during the tests")

    def cmp(*args):
        guard()
        left = args[0]
        result = True
        for i in range(1, _len(args), 2):
            op, right = args[i], args[i + 1]
            for operand in (left, right):
                bad = untrusted(operand)
                if bad is not None:
                    raise AssertionError(
                        f"PURPCODE_HARNESS: untrusted comparison: {describe(bad)} defines its own comparison or "
                        "arithmetic (only built-in types, the test's own classes and a few stdlib types compare)"
                    )
            result = ops[op](left, right)
            if _len(args) == 3:
                if _type(result) is bool and not result:
                    try:
                        state["last"] = f"{_repr(left)[:300]} {op} {_repr(right)[:300]}"
                    except BaseException:
                        state["last"] = f"<unprintable> {op} <unprintable>"
                return result
            if not truth(result):
                return result
            left = right
        return result

    def truth(value, is_assert=False):
        guard()
        if is_assert:
            state["asserts"] += 1
        if _type(value) is bool:
            return value
        bad = untrusted(value)
        if bad is not None:
            raise AssertionError(
                f"PURPCODE_HARNESS: untrusted truth value: {describe(bad)} defines its own truth"
            )
        return _bool(value)

    class Guarded:
        """`func` whose every return value must pass the trust check: a fake value is stopped where it leaves
        the solution, before library code (unittest, numpy, ...) could compare it out of the rewriter's sight.
        Other attributes (`__self__`, `__name__`, ...) are the function's own."""

        __slots__ = ("__wrapped__", "_where")

        def __init__(self, func, where):
            object.__setattr__(self, "__wrapped__", func)
            object.__setattr__(self, "_where", where)

        def __call__(self, *args, **kwargs):
            result = self.__wrapped__(*args, **kwargs)
            bad = untrusted(result)
            if bad is not None:
                raise AssertionError(
                    f"PURPCODE_HARNESS: {self._where} returned {describe(bad)}, which defines its own "
                    "comparison, truth or arithmetic"
                )
            return result

        def __getattr__(self, name):
            return getattr(self.__wrapped__, name)

        def __get__(self, obj, objtype=None):
            return self if obj is None else Guarded(self.__wrapped__.__get__(obj, objtype), self._where)

    def guarded(func, where):
        return Guarded(func, where)

    def guard_module_functions(namespace, filename):
        for name, value in list(namespace.items()):
            code = getattr(value, "__code__", None)
            if _isinstance(value, types.FunctionType) and code is not None and code.co_filename == filename:
                namespace[name] = guarded(value, f"solution function {name}()")

    def guard_unittest():
        """unittest's assert* methods compare inside the library: check their operands first."""
        import unittest

        checked = [
            "assertEqual", "assertNotEqual", "assertTrue", "assertFalse", "assertIn", "assertNotIn",
            "assertAlmostEqual", "assertNotAlmostEqual", "assertGreater", "assertGreaterEqual", "assertLess",
            "assertLessEqual", "assertListEqual", "assertTupleEqual", "assertSetEqual", "assertDictEqual",
            "assertSequenceEqual", "assertCountEqual", "assertMultiLineEqual", "assertIsNone", "assertIsNotNone",
        ]  # fmt: skip

        def wrap(method, name):
            def checked_method(self, *args, **kwargs):
                guard()
                for arg in args[:2]:
                    bad = untrusted(arg)
                    if bad is not None:
                        raise self.failureException(
                            f"PURPCODE_HARNESS: {name} got {describe(bad)}, which defines its own comparison"
                        )
                state["asserts"] += 1
                return method(self, *args, **kwargs)

            checked_method.__name__ = name
            return checked_method

        for name in checked:
            method = getattr(unittest.TestCase, name, None)
            if method is not None:
                setattr(unittest.TestCase, name, wrap(method, name))

    # ------------------------------------------------------------------ integrity: nothing the tests use is patched

    watched = [
        "builtins",
        "sys",
        "os",
        "math",
        "cmath",
        "operator",
        "functools",
        "itertools",
        "collections",
        "collections.abc",
        "re",
        "json",
        "copy",
        "string",
        "decimal",
        "fractions",
        "statistics",
        "types",
        "abc",
        "numbers",
        "heapq",
        "bisect",
        "unittest",
        "unittest.case",
        "unittest.result",
        "unittest.suite",
        "unittest.runner",
        "unittest.loader",
        "unittest.main",
        "unittest.util",
        "inspect",
        "traceback",
        "pytest",
        "_pytest.python",
        "_pytest.runner",
        "_pytest.main",
        "_pytest.reports",
        "_pytest.unittest",
        "_pytest.outcomes",
        "_pytest.python_api",
        "_pytest.fixtures",
        "_pytest.skipping",
        "_pytest.nodes",
        "_pytest.config",
        "_pytest.assertion.rewrite",
        "_pytest.terminal",
        "pluggy",
        "pluggy._hooks",
        "pluggy._callers",
        "pluggy._manager",
        "pluggy._result",
    ]
    volatile = {
        ("sys", "excepthook"),
        ("sys", "unraisablehook"),
        ("sys", "displayhook"),
        ("sys", "breakpointhook"),
        ("threading", "excepthook"),
        ("sys", "audit"),
    }

    def snapshot():
        snap = {}
        for name in watched:
            module = sys.modules.get(name)
            if module is None:
                continue
            for key, value in list(vars(module).items()):
                if (name, key) in volatile or not (callable(value) or _isinstance(value, type)):
                    continue
                snap[(name, key)] = value
                if _isinstance(value, type) and getattr(value, "__module__", None) == name:
                    for attr, member in list(vars(value).items()):
                        if callable(member) or _isinstance(member, (staticmethod, classmethod, property)):
                            snap[(name, key, attr)] = member
        return snap

    def changed(before):
        after = snapshot()
        diffs = [".".join(k) for k, v in before.items() if after.get(k) is not v]
        return diffs

    def no_tracing(*_args, **_kwargs):
        raise PermissionError("tracing and profiling hooks are disabled while tests are checked")

    sys.settrace = sys.setprofile = threading.settrace = threading.setprofile = no_tracing
    original_build_class = builtins.__build_class__

    def build_class(func, name, *bases, **kwds):
        cls = original_build_class(func, name, *bases, **kwds)
        if getattr(getattr(func, "__code__", None), "co_filename", None) in test_files:
            trusted_classes.add(cls)
        return cls

    builtins.__build_class__ = build_class

    def cache_source(filename, text):
        lines = text.splitlines(True)
        linecache.cache[filename] = (_len(text), None, lines, filename)

    # ------------------------------------------------------------------ functional

    if kind == "functional":
        test_filename = meta["test_filename"]
        test_files.add(test_filename)
        tests_src = take(".pc_tests").decode("utf-8")
        sol_path = os.path.join(work, "solution.py")
        with open(sol_path, "rb") as fh:
            sol_src = fh.read().decode("utf-8", "replace")
        module = types.ModuleType("solution")
        module.__file__ = sol_path
        sys.modules["solution"] = module
        if "unittest" in tests_src:
            guard_unittest()
        before = snapshot()
        try:
            code = compile(sol_src, sol_path, "exec")
        except BaseException as exc:
            fail("the solution does not compile:\n" + tb(exc), error=True)
        try:
            exec(code, module.__dict__)
        except BaseException as exc:
            fail("the solution raised while loading:\n" + tb(exc), error=True)
        ns = module.__dict__
        guard_module_functions(ns, sol_path)
        ns["_pcH_cmp"] = cmp
        ns["_pcH_truth"] = truth
        cache_source(test_filename, tests_src)
        try:
            exec(compile(tests_src, test_filename, "exec"), ns)
            check = ns.get("check")
            entry = meta.get("entry_point")
            if (
                entry
                and callable(check)
                and getattr(getattr(check, "__code__", None), "co_filename", "") == test_filename
            ):
                try:
                    candidate = eval(compile(entry, "<entry_point>", "eval"), ns)
                except BaseException as exc:
                    fail(f"entry point {entry!r} is not defined by the solution:\n" + tb(exc), error=True)
                check(guarded(candidate, f"the entry point {entry}"))
        except BaseException as exc:
            detail = f" ({state['last']})" if state["last"] else ""
            fail(f"a test failed{detail}:\n" + tb(exc))
        guard()
        diffs = changed(before)
        if diffs:
            fail("the solution patched what the tests rely on: " + ", ".join(diffs[:10]))
        if state["asserts"] < 1:
            fail("no assertion ran (is check() called? does the test define asserts?)")
        prove(state["asserts"])

    # ------------------------------------------------------------------ pytest

    import pytest

    test_path = os.path.join(work, meta["test_file"])
    test_files.add(test_path)
    required = list(meta.get("required", []))

    sol_path = os.path.join(work, "solution.py")

    def enter():
        """First statement of the test module: keep its source for tracebacks, blank it on disk (same inode, so
        pytest still recognises the file) before the solution is imported and could read the expected values;
        then import the solution once, with its functions' return values guarded (the test's own
        `from solution import ...` gets these)."""
        try:
            with open(test_path, "r+", encoding="utf-8") as fh:
                cache_source(test_path, fh.read())
                fh.seek(0)
                fh.truncate()
                fh.write("# the test source is held by the harness\n")
        except OSError:
            pass
        if os.path.exists(sol_path) and "solution" not in sys.modules:
            import importlib

            module = importlib.import_module("solution")
            guard_module_functions(module.__dict__, getattr(module, "__file__", sol_path))

    rt = types.ModuleType("_pcH_rt")
    rt._pcH_cmp, rt._pcH_truth, rt._pcH_enter = cmp, truth, enter
    sys.modules["_pcH_rt"] = rt

    guard_unittest()

    class Plugin:
        def __init__(self):
            self.before = None
            self.items = []
            self.passed = set()
            self.ran = set()
            self.problems = []
            self.collect_errors = 0

        @pytest.hookimpl(tryfirst=True)
        def pytest_sessionstart(self, session):
            self.before = snapshot()

        def pytest_collectreport(self, report):
            if report.failed:
                self.collect_errors += 1

        def pytest_collection_modifyitems(self, session, config, items):
            keep, drop = [], []
            for item in items:
                func = getattr(item, "obj", None)
                code = getattr(func, "__code__", None)
                (keep if code is not None and code.co_filename == test_path else drop).append(item)
            items[:] = keep
            if drop:
                config.hook.pytest_deselected(items=drop)
            self.items = list(keep)

        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_call(self, item):
            outcome = yield
            diffs = changed(self.before)
            if diffs:
                self.problems.append(f"{item.nodeid} ran with patched " + ", ".join(diffs[:10]))
            elif outcome.excinfo is None and _gettrace() is None and _getprofile() is None:
                self.ran.add(item.nodeid)

        @pytest.hookimpl(tryfirst=True)
        def pytest_sessionfinish(self, session, exitstatus):
            # Here, before pytest's own cleanup undoes its configure-time patches.
            self.final_diffs = changed(self.before)

        def pytest_runtest_logreport(self, report):
            if report.when == "call" and report.passed:
                self.passed.add(report.nodeid)
            elif report.failed or report.skipped:
                self.problems.append(f"{report.nodeid} {report.when}: {report.outcome}")

    plugin = Plugin()
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    sys.dont_write_bytecode = True
    try:
        rc = pytest.main(
            [
                test_path,
                "-q",
                "-x",
                "-p",
                "no:cacheprovider",
                "--noconftest",
                "--rootdir",
                work,
                "-o",
                "addopts=",
            ],
            plugins=[plugin],
        )
    except BaseException as exc:
        fail("pytest did not complete:\n" + tb(exc))
    kept = [item.nodeid for item in plugin.items]
    if int(rc) != 0:
        fail(f"pytest exit status {int(rc)}; " + "; ".join(plugin.problems[:10]))
    if plugin.collect_errors or not kept:
        fail("no test was collected from the test file" if not kept else "collection errors")
    if plugin.problems:
        fail("; ".join(plugin.problems[:10]))
    missing = [n for n in kept if n not in plugin.passed or n not in plugin.ran]
    if missing:
        fail("tests without a verified pass: " + ", ".join(missing[:10]))
    names = set()
    for item in plugin.items:
        base = getattr(item, "originalname", None) or item.name.split("[")[0]
        parent = item.parent
        names.add(base)
        if parent is not None and _isinstance(parent, pytest.Class):
            names.add(f"{parent.name}::{base}")
    absent = [n for n in required if n not in names]
    if absent:
        fail("test functions of the file that did not run: " + ", ".join(absent[:10]))
    diffs = getattr(plugin, "final_diffs", None)
    if diffs is None or diffs:
        fail(
            "the solution patched what the tests rely on: " + ", ".join((diffs or ["(no final check)"])[:10])
        )
    prove(_len(kept))
