"""`make mutants`: mutation testing (mutmut 3) of the modules that decide rewards and data, one module at a time.

Why a driver: mutmut 3 imports mutated code only from `./`, `src/` or `source/`, while this repository keeps its two
packages under `workloads/` and `operator/`. Each module is therefore run in its own scratch copy,
`.mutants/<module>/`, with the packages under `src/`, only that module mutated (`only_mutate`) and only its own test
files run: on a small machine a whole-suite run per mutant would take days. The scratch copy's pyproject.toml is the
repository's plus a `[tool.mutmut]` section built from MODULES below.

    python tools/mutants.py                  # every module, one after the other; prints and writes the scores
    python tools/mutants.py format sampling  # just these
    python tools/mutants.py --list           # the modules and their test files
    python tools/mutants.py decide --names 'purpcode_operator.decide.x_owner_of__mutmut_*'   # a partial rerun

Scores go to .mutants/scores.json; docs/testing.md reports them and justifies each surviving mutant.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".mutants"


@dataclass(frozen=True)
class Module:
    path: str  # under src/ in the scratch copy (purpcode/... or purpcode_operator/...)
    tests: tuple[str, ...]  # test files (or file::test selections) that exercise it


MODULES: dict[str, Module] = {
    "format": Module(
        "purpcode/oracles/format.py", ("tests/oracles/test_format.py", "tests/oracles/test_format_mutants.py")
    ),
    "codesec": Module(
        "purpcode/oracles/codesec.py",
        ("tests/oracles/test_codesec.py", "tests/oracles/test_codesec_mutants.py"),
    ),
    "correctness": Module(
        "purpcode/oracles/correctness.py",
        (
            "tests/oracles/test_correctness.py",
            "tests/oracles/test_review_correctness.py",
            "tests/oracles/test_correctness_blocks.py",
            "tests/oracles/test_correctness_mutants.py",
        ),
    ),
    "judge": Module(
        "purpcode/oracles/judge.py", ("tests/oracles/test_judge.py", "tests/oracles/test_judge_mutants.py")
    ),
    "dispatch": Module(  # the oracles' own tests score through the runner too (format gate, then dispatch)
        "purpcode/oracles/runner.py",
        (
            # The real GRPO step (torch, a tiny model) ran past pytest-timeout's 600 s under mutmut's trampolines
            # on the shared machine; the other runner tests reach the same dispatch code.
            "--deselect=tests/oracles/test_runner.py::test_inside_a_real_grpo_step",
            "tests/oracles/test_runner.py",
            "tests/oracles/test_runner_mutants.py",
            "tests/oracles/test_codesec.py",
            "tests/oracles/test_judge.py",
            "tests/oracles/test_correctness.py",
        ),
    ),
    "rejection": Module(
        "purpcode/rule_learning/rejection.py",
        ("tests/rule_learning/test_rejection.py", "tests/rule_learning/test_rejection_mutants.py"),
    ),
    "easy": Module("purpcode/rl/data.py", ("tests/rl/test_data.py", "tests/rl/test_data_mutants.py")),
    "sampling": Module(
        "purpcode/rl/sampling.py", ("tests/rl/test_sampling.py", "tests/rl/test_sampling_mutants.py")
    ),
    "split": Module(  # the orchestration through a scripted generator (the tiny-model runs take 15-20 s each)
        "purpcode/synthesis/pipeline.py",
        (
            "tests/synthesis/test_review_synthesis.py",
            "tests/synthesis/test_split_mutants.py",
            "tests/synthesis/test_pipeline_orchestration.py",
            # Builds and loads the tiny model (10-15 s) for the transformers-path mutants it alone kills (2, by hand):
            # checked by hand instead of costing that for every mutant of `Synthesis.__init__`.
            "--deselect=tests/synthesis/test_pipeline_orchestration.py::"
            "test_the_default_generator_for_a_local_model_is_the_base_model_on_cpu",
        ),
    ),
    "dedup": Module(
        "purpcode/synthesis/dedup.py",
        (
            "tests/synthesis/test_text_and_dedup.py",
            "tests/synthesis/test_review_synthesis.py",
            "tests/synthesis/test_dedup_mutants.py",
        ),
    ),
    "decide": Module(
        "purpcode_operator/decide.py",
        (
            "tests/operator/test_decide.py",
            "tests/operator/test_decide_mutants.py",
            "tests/operator/test_decide_mutants_status.py",
            "tests/operator/test_decide_mutants_steps.py",
        ),
    ),
}

_SRC = {
    "purpcode": ROOT / "workloads" / "purpcode",
    "purpcode_operator": ROOT / "operator" / "purpcode_operator",
}


def _ignore(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n in ("__pycache__", ".pytest_cache", "mutants") or n.endswith(".pyc")}


def stage(name: str, module: Module) -> Path:
    """A fresh scratch copy for one module: src/<packages>, tests/, pyproject.toml with its [tool.mutmut]."""
    work = WORK / name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for pkg, src in _SRC.items():
        shutil.copytree(src, work / "src" / pkg, ignore=_ignore)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=_ignore)
    for extra in ("manifests", "helm"):  # data the tests read relative to the repository root
        if (ROOT / extra).exists():
            shutil.copytree(ROOT / extra, work / extra, ignore=_ignore)
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    pyproject = re.sub(r"(?ms)^\[tool\.mutmut\].*?(?=^\[|\Z)", "", pyproject)
    tests = ", ".join(json.dumps(t) for t in module.tests)
    pyproject += (
        "\n[tool.mutmut]\n"
        'source_paths = ["src"]\n'
        f'only_mutate = ["src/{module.path}"]\n'
        f"pytest_add_cli_args_test_selection = [{tests}]\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]\n'
        'also_copy = ["manifests", "helm"]\n'
        "use_git_change_detection = false\n"
    )
    (work / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    return work


_STATUS = re.compile(r"^\s*(?P<name>[\w.]+__mutmut_\d+): (?P<status>[\w ]+)$")


def run(name: str, module: Module, max_children: int, names: tuple[str, ...] = ()) -> dict[str, object]:
    """Run mutmut over one module; with `names` (mutmut's mutant names, fnmatch patterns allowed) only those
    mutants run and only they are counted: a partial rerun, e.g. of one function's survivors."""
    work = stage(name, module)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the mutated copy must be what imports
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    mutmut = [sys.executable, "-m", "mutmut"]
    log = WORK / f"{name}.log"
    with open(log, "wb") as fh:
        subprocess.run(
            [*mutmut, "run", f"--max-children={max_children}", *names],
            cwd=work,
            env=env,
            stdout=fh,
            stderr=fh,
        )
    results = subprocess.run(
        [*mutmut, "results", "--all=true"], cwd=work, env=env, capture_output=True, text=True, check=False
    ).stdout
    statuses: dict[str, str] = {}
    for line in results.splitlines():
        m = _STATUS.match(line)
        if m and (not names or any(fnmatch.fnmatchcase(m["name"], pat) for pat in names)):
            statuses[m["name"]] = m["status"].strip()
    if not statuses or "failed to collect stats" in log.read_text(errors="replace"):
        return {"module": module.path, "error": f"mutmut did not run the tests cleanly; see {log.name}"}
    killed = sum(1 for s in statuses.values() if s in ("killed", "timeout", "segfault"))
    survived = sorted(n for n, s in statuses.items() if s == "survived")
    other = sorted(
        f"{n}: {s}" for n, s in statuses.items() if s not in ("killed", "timeout", "segfault", "survived")
    )
    return {
        "module": module.path,
        "mutants": len(statuses),
        "killed": killed,
        "survived": survived,
        "other": other,
        "score": round(killed / len(statuses), 3) if statuses else None,
        "log": str(log.relative_to(ROOT)),
        **({"only": list(names)} if names else {}),
    }


_STRING = re.compile(r"""(?:[rbfu]{0,2})("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")


def classify(diff: str) -> str:
    """'text' when the mutant only changed the contents of string literals (messages, prompts, keys of logged
    details), else 'logic'."""
    minus = [line[1:] for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    plus = [line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]

    def blank(lines: list[str]) -> list[str]:
        return [_STRING.sub('""', line).strip() for line in lines]

    return "text" if minus and blank(minus) == blank(plus) else "logic"


def survivors(name: str) -> list[tuple[str, str, str]]:
    """(mutant, category, diff) for each survivor of a finished module run."""
    work = WORK / name
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    mutmut = [sys.executable, "-m", "mutmut"]
    results = subprocess.run(
        [*mutmut, "results"], cwd=work, env=env, capture_output=True, text=True, check=False
    ).stdout
    out = []
    for line in results.splitlines():
        m = _STATUS.match(line)
        if m and m["status"].strip() == "survived":
            show = subprocess.run(
                [*mutmut, "show", m["name"]], cwd=work, env=env, capture_output=True, text=True, check=False
            ).stdout
            diff = "\n".join(x for x in show.splitlines() if x[:1] in "+-" and x[:3] not in ("+++", "---"))
            out.append((m["name"], classify(diff), diff))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("modules", nargs="*", help=f"some of: {', '.join(MODULES)} (default: all)")
    parser.add_argument("--list", action="store_true", help="print the modules and their tests")
    parser.add_argument(
        "--report", action="store_true", help="print .mutants/scores.json as a Markdown table"
    )
    parser.add_argument(
        "--survivors", action="store_true", help="print each finished module's survivors with their diff"
    )
    parser.add_argument(
        "--max-children", type=int, default=1, help="parallel mutants (default 1: shared CPUs)"
    )
    parser.add_argument(
        "--names",
        nargs="+",
        default=(),
        metavar="PATTERN",
        help="only these mutants (mutmut names, fnmatch patterns such as "
        "'purpcode_operator.decide.x__finish_status__mutmut_*'); scores count only them (one module at a time)",
    )
    args = parser.parse_args(argv)
    if args.names and len(args.modules) != 1:
        parser.error("--names needs exactly one module")
    if args.list:
        for name, mod in MODULES.items():
            print(f"{name:12} {mod.path:40} {' '.join(mod.tests)}")
        return 0
    if args.report:
        scores = json.loads((WORK / "scores.json").read_text())
        print("| module | file | mutants | killed | survived (text / logic) | score |")
        print("|---|---|---|---|---|---|")
        for name in MODULES:
            r = scores.get(name)
            if r and "error" in r:
                print(f"| {name} | `{MODULES[name].path}` | {r['error']} | | | |")
                continue
            if not r:
                print(f"| {name} | `{MODULES[name].path}` | not run | | | |")
                continue
            kinds = [classify(d) for _, _, d in survivors(name)] if (WORK / name / "mutants").is_dir() else []
            text = kinds.count("text")
            print(
                f"| {name} | `{r['module']}` | {r['mutants']} | {r['killed']} | {len(r['survived'])} "
                f"({text} / {len(r['survived']) - text}) | {r['score']:.0%} |"
            )
        return 0
    if args.survivors:
        for name in args.modules or list(MODULES):
            if (WORK / name / "mutants").is_dir():
                for mutant, category, diff in survivors(name):
                    print(f"== {name} {category} {mutant}\n{diff}")
        return 0
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {unknown}: choose from {', '.join(MODULES)}")
    WORK.mkdir(exist_ok=True)
    scores_path = WORK / "scores.json"
    for name in args.modules or list(MODULES):
        result = run(name, MODULES[name], args.max_children, tuple(args.names))
        # A partial rerun (--names) goes to its own key so it never replaces the module's full score.
        if args.names:
            name = f"{name} (partial)"
        # Read again just before writing: another invocation may have finished a module meanwhile.
        scores = json.loads(scores_path.read_text()) if scores_path.exists() else {}
        scores[name] = result
        tmp = scores_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(scores, indent=2, sort_keys=True))
        os.replace(tmp, scores_path)
        if "error" in result:
            print(f"{name}: {result['error']}")
        else:
            survived = result["survived"]
            assert isinstance(survived, list)
            print(f"{name}: {result['killed']}/{result['mutants']} killed, survivors: {len(survived)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
