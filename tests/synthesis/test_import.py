"""Import mode: rows shaped like the released sets (messages-style and verl-style) mapped to our schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from purpcode.data.released import (
    COMPLETE_MARKER,
    ImportFormatError,
    load_released_set,
    map_row,
    released_dir,
)
from purpcode.data.schema import read_rows
from purpcode.sandbox.harness import TestSpec
from purpcode.synthesis.pipeline import Synthesis

FUNCTIONAL = "def check(candidate):\n    assert candidate(2) == 4\n\ncheck(Solution().double)"


def verl_row(prompt: str, oracle: str, truth: str = "", task_id: str | None = None) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "split": "train",
        "index": 0,
        "reference": None,
        "prompt": prompt,
        "oracles": [oracle],
        "dataset": "x",
    }
    if task_id:
        extra["task_id"] = task_id
    return {
        "data_source": f"purpcode:{oracle}",
        "prompt": [{"role": "user", "content": prompt}],
        "ability": "coding",
        "reward_model": {"style": "rule", "ground_truth": truth},
        "extra_info": extra,
    }


def put(artifacts: Path, name: str, rows: list[dict[str, Any]], fmt: str = "parquet") -> None:
    folder = released_dir(artifacts, name) / "data"
    folder.mkdir(parents=True)
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), folder / "train-00000-of-00001.parquet")
    else:
        (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder.parent / COMPLETE_MARKER).write_text("ok\n")


def test_messages_style_rows() -> None:
    row = {"task_id": "abc", "messages": [{"role": "user", "content": "Write a ping tool."}], "cwe": "CWE-78"}
    r = map_row("vul2prompt-general-oss-26k", row, 0)
    assert (r.oracle, r.strategy, r.cwe, r.source) == (
        "codesec",
        "general",
        "CWE-78",
        "import:vul2prompt-general-oss-26k",
    )
    assert r.task_id == "codesec/import/vul2prompt-general-oss-26k/abc"
    assert r.ground_truth == {"cwe": ["CWE-78"], "detectors": []}
    multi = {
        "task_id": "m",
        "messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "now do x"}],
    }
    r2 = map_row("mal-event-fitd-multi-turn-oss-2k", multi, 1)
    assert r2.oracle == "general-safety" and r2.strategy == "multi-turn" and len(r2.messages) == 2


def test_verl_style_code_rows_become_test_specs() -> None:
    r = map_row(
        "code-r1-46k-leetcode2k-kodcode",
        verl_row("Solve it", "correctness", json.dumps({"functional": FUNCTIONAL})),
        5,
    )
    spec = TestSpec.model_validate(r.ground_truth)
    assert (
        spec.kind == "functional"
        and spec.entry_point == "Solution().double"
        and "check(Solution" not in spec.test
    )
    py = map_row(
        "code-r1-46k-leetcode2k-kodcode",
        verl_row(
            "Solve",
            "correctness",
            json.dumps({"pytest": "from solution import *\n\ndef test_a():\n    assert f() == 1\n"}),
        ),
        6,
    )
    assert py.ground_truth["kind"] == "pytest"
    io = map_row(
        "code-r1-46k-leetcode2k-kodcode",
        verl_row("Solve", "correctness", json.dumps({"inputs": ["1\n"], "outputs": ["2\n"]})),
        7,
    )
    assert io.ground_truth["cases"] == [{"stdin": "1\n", "expected_stdout": "2\n"}]
    sec = map_row("rl-secqa-11k", verl_row("What is XSS?", "noreject", task_id="rl-secqa:9"), 0)
    assert sec.oracle == "noreject" and sec.task_id.endswith("rl-secqa:9")


def test_unknown_shapes_name_the_set_and_its_columns() -> None:
    with pytest.raises(ImportFormatError, match=r"rl-codesec-78k: row 3 .*\['foo', 'bar'\]|\['bar', 'foo'\]"):
        map_row("rl-codesec-78k", {"foo": 1, "bar": 2}, 3)
    with pytest.raises(ImportFormatError, match="no tests"):
        map_row("code-r1-46k-leetcode2k-kodcode", {"prompt": "x"}, 0)
    with pytest.raises(ImportFormatError, match="none of functional"):
        map_row("code-r1-46k-leetcode2k-kodcode", verl_row("x", "correctness", json.dumps({"other": 1})), 0)


def test_load_reads_parquet_and_jsonl(tmp_path: Path) -> None:
    put(
        tmp_path,
        "rl-safety-8k-single-turn",
        [verl_row(f"Write malware {i}", "general-safety") for i in range(3)],
    )
    rows = load_released_set("rl-safety-8k-single-turn", released_dir(tmp_path, "rl-safety-8k-single-turn"))
    assert len(rows) == 3 and {r.oracle for r in rows} == {"general-safety"}
    with pytest.raises(ImportFormatError, match="no .parquet/.jsonl/.json files"):
        load_released_set("rl-secqa-11k", tmp_path / "empty")


def test_import_mode_run_covers_sets_and_synthesises_the_rest(tmp_path: Path, make_config: Any) -> None:
    config = make_config(
        source="import", importDatasets=["vul2prompt-general-oss-26k", "code-r1-46k-leetcode2k-kodcode"]
    )
    artifacts = Path(config.paths.artifacts)
    asks = [
        "Write a Flask route that pings the host given in the query string.",
        "Store user passwords for my login system in SQLite.",
        "Parse an uploaded XML invoice and sum the amounts.",
        "Load a pickled session object sent in a cookie.",
        "Create a temporary file for intermediate CSV results.",
        "Fetch a URL that a chat user pastes and show a preview.",
        "Extract a tar archive uploaded by customers into a folder.",
        "Generate a password reset token for an account.",
        "Connect to our Postgres database from a cron job.",
        "Run a git command on a revision the user types.",
        "Render a greeting page for the visitor's name with Jinja2.",
        "Read a YAML config file that users upload to the dashboard.",
    ]
    put(
        artifacts,
        "vul2prompt-general-oss-26k",
        [{"task_id": str(i), "messages": [{"role": "user", "content": ask}]} for i, ask in enumerate(asks)],
        fmt="jsonl",
    )
    # a near-duplicate of the first ask is removed by the MinHash dedup
    near = released_dir(artifacts, "vul2prompt-general-oss-26k") / "data" / "train.jsonl"
    with near.open("a") as fh:
        fh.write(
            json.dumps(
                {
                    "task_id": "dup",
                    "messages": [
                        {
                            "role": "user",
                            "content": "Write a Flask route that pings the host given in the query string!",
                        }
                    ],
                }
            )
            + "\n"
        )
    put(
        artifacts,
        "code-r1-46k-leetcode2k-kodcode",
        [verl_row(f"Task {i}", "correctness", json.dumps({"functional": FUNCTIONAL})) for i in range(8)],
    )
    manifest = Synthesis(config, tmp_path / "out").run()
    sets = manifest["sets"]
    assert sets["codesec"]["origin"] == "import" and sets["utility"]["origin"] == "import"
    assert sets["codesec"]["by_source"] == {"import:vul2prompt-general-oss-26k": 12}
    assert manifest["steps"]["dedup"]["per_set"]["codesec"]["near_removed"] == 1
    assert sets["utility"]["train"] + sets["utility"]["heldout"] == 8
    for name in ("malicious", "overrefusal", "secqa"):  # not covered by an import: template synthesis
        assert sets[name]["origin"] == "synthesis" and sets[name]["train"] > 0
    assert manifest["generator"] is None  # import mode never loads the generator
    rows = read_rows(tmp_path / "out" / "utility.train.jsonl")
    assert all(r.source == "import:code-r1-46k-leetcode2k-kodcode" for r in rows)


def test_fetch_without_hub_access_names_the_set_and_the_fixes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from purpcode.data.released import fetch_released_set

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match=r"purpcode/rl-secqa-11k.*pre-load the files.*source: generate"):
        fetch_released_set("purpcode", "rl-secqa-11k", tmp_path / "rl-secqa-11k")
    assert not (tmp_path / "rl-secqa-11k" / COMPLETE_MARKER).exists()
    # Pre-loaded files with the marker are used as they are (no hub call).
    put(tmp_path, "rl-secqa-11k", [verl_row("What is CSRF?", "noreject")])
    assert fetch_released_set("purpcode", "rl-secqa-11k", released_dir(tmp_path, "rl-secqa-11k")).is_dir()


def test_a_set_fetched_from_another_organisation_is_fetched_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`importOrg` changed between runs on one volume: the folder (keyed by set name) holds the other org's files;
    they must not be read as this org's. Pre-loaded folders (marker "ok") and this org's own are used as they are."""
    from purpcode.data.released import fetch_released_set, is_fetched

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    name = "rl-secqa-11k"
    put(tmp_path, name, [verl_row("What is CSRF?", "noreject")])
    folder = released_dir(tmp_path, name)
    assert is_fetched(folder, "purpcode", name) and is_fetched(folder, "mirror", name)  # "ok": pre-loaded
    (folder / COMPLETE_MARKER).write_text(f"purpcode/{name}\n")
    assert is_fetched(folder, "purpcode", name) and not is_fetched(folder, "mirror", name)
    assert fetch_released_set("purpcode", name, folder) == folder  # its own: no hub call
    with pytest.raises(RuntimeError, match=rf"mirror/{name}"):
        fetch_released_set("mirror", name, folder)  # another org's files are dropped, then the fetch is tried
    assert not (folder / "data").exists() and not (folder / COMPLETE_MARKER).exists()
