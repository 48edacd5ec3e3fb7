"""Bad spec files through `purpcode validate`, `plan` and `run`: exit 2, one line per problem, never a traceback.

One loader (purpcode_operator.specfile) serves every command, so each case runs through all three.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from purpcode.cli import main as cli_main
from purpcode_operator.specfile import MAX_NODES, MAX_SPEC_BYTES, load_spec_file, parse_spec_text
from purpcode_operator.validate import SpecError

HEAD = "apiVersion: purpcode.dev/v1alpha1\nkind: PurpCodeRun\nmetadata: {name: bad}\n"
GOOD = HEAD + "spec:\n  model: {name: tiny-random}\n"


def rl(field: str) -> bytes:
    return (GOOD + f"  stages:\n    rl: {{{field}}}\n").encode()


# A "billion laughs" of under 500 bytes (the was 551): 9 levels of 9 aliases, 9^9 strings expanded.
ALIAS_BOMB = (
    HEAD
    + "spec:\n  model: {name: tiny-random}\n"
    + 'x-lol: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(
        f"x-{n}: &{n} [{','.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
    )
).encode()

# (case id, file content, a phrase the single problem line must contain)
BAD_FILES: list[tuple[str, bytes, str]] = [
    ("bool-as-int", rl("maxSteps: true"), "spec.stages.rl.maxSteps: must be an integer, got True"),
    ("string-as-int", rl('maxSteps: "3"'), "spec.stages.rl.maxSteps: must be an integer, got '3'"),
    ("float-as-int", rl("maxSteps: 3.5"), "spec.stages.rl.maxSteps: must be an integer, got 3.5"),
    ("int-beyond-int64", rl(f"maxSteps: {10**30}"), "spec.stages.rl.maxSteps: must fit a 64-bit integer"),
    ("seed-beyond-numpy", (GOOD + f"  seed: {2**40}\n").encode(), "spec.seed: must be <= 4294967295"),
    ("seed-1e30", (GOOD + "  seed: 1.0e+30\n").encode(), "spec.seed: must be an integer"),
    (
        "nan",
        rl("learningRate: .nan"),
        "spec.stages.rl.learningRate: must be a finite number (not NaN or infinity)",
    ),
    ("infinity", rl("learningRate: -.inf"), "learningRate: must be a finite number (not NaN or infinity)"),
    (
        "two-documents",
        (GOOD + "---\n" + GOOD).encode(),
        "file holds 2 documents; a spec file holds exactly one",
    ),
    ("no-document", b"# nothing here\n", "file holds no document"),
    (
        "duplicate-key",
        (GOOD + "  seed: 1\n  seed: 2\n").encode(),
        "line 7: duplicate key 'seed' (first on line 6)",
    ),
    ("not-utf8", (GOOD + "  # caf\xe9\n").encode("latin-1"), "not UTF-8 text: byte 0xe9 at offset"),
    ("binary", b"\x7fELF\x02\x01\x01\x00\x00\x00", "binary file (a NUL byte at offset 7)"),
    ("utf-16", GOOD.encode("utf-16"), "UTF-16 text (byte-order mark); save the file as UTF-8"),
    ("too-large", b"#" * (MAX_SPEC_BYTES + 1), f"a spec is at most {MAX_SPEC_BYTES} bytes"),
    ("alias-bomb", ALIAS_BOMB, f"aliases expand to more than {MAX_NODES} nodes"),
    ("recursive-alias", (GOOD + "x: &r [*r]\n").encode(), "a recursive alias"),
    ("deep-nesting", (GOOD + "x: " + "[" * 200 + "]" * 200 + "\n").encode(), "nested deeper than"),
    ("yaml-syntax", (GOOD + "  seed: [1,\n").encode(), "not valid YAML: line"),
    ("not-a-mapping", b"- 1\n- 2\n", "expected a PurpCodeRun mapping, got list"),
    ("python-tag", (GOOD + "x: !!python/object/apply:os.system ['true']\n").encode(), "not valid YAML"),
]


@pytest.mark.parametrize(("content", "phrase"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
@pytest.mark.parametrize("command", ["validate", "plan", "run"])
def test_bad_spec_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, content: bytes, phrase: str
) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(content)
    argv = [command, str(path)] + (["--workdir", str(tmp_path / "work")] if command == "run" else [])
    assert cli_main(argv) == 2
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{path}: ") and phrase in lines[0], out.err
    assert "Traceback" not in out.err + out.out
    assert not (tmp_path / "work").exists()


def test_one_line_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(GOOD + "  seed: 1\n  seed: 2\n  stages: {rl: {a: 1}}\n  stages: {}\n")
    with pytest.raises(SpecError) as err:
        load_spec_file(path)
    assert [p.message[:24] for p in err.value.problems] == [
        "line 7: duplicate key 's",
        "line 9: duplicate key 's",
    ]


@pytest.mark.timeout(20)
def test_alias_bomb_costs_neither_time_nor_memory() -> None:
    tracemalloc.start()
    try:
        with pytest.raises(SpecError, match="alias bomb"):
            parse_spec_text(ALIAS_BOMB.decode())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * 1024 * 1024


def test_merge_keys_and_plain_aliases_still_work(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(
        HEAD + "spec:\n  model: {name: tiny-random}\n  stages:\n"
        "    synthesis: &common {resources: {cpu: '1', memory: 2Gi}}\n"
        "    evaluation: {<<: *common, maxPerSuite: 4}\n"
    )
    run = load_spec_file(path)
    assert run.spec.stages.evaluation.resources.cpu == "1" and run.spec.stages.evaluation.max_per_suite == 4


def test_exponent_floats_are_numbers_as_kubernetes_reads_them(tmp_path: Path) -> None:
    """PyYAML alone reads `5e-7` as a string, which the strict models would refuse for a learning rate."""
    path = tmp_path / "spec.yaml"
    path.write_text(GOOD + "  stages:\n    rl: {learningRate: 5e-7, klCoef: 1E-3}\n")
    run = load_spec_file(path)
    assert run.spec.stages.rl.learning_rate == 5e-7 and run.spec.stages.rl.kl_coef == 1e-3
