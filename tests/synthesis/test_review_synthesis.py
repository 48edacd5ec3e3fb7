"""Review of the synthesis stage: the train / held-out split must not leak near-duplicates.

Dedup compares prompts only within a group written the same way (set, strategy, template), so one malicious
request wrapped by two templates, or one seed's code window asked about by vul2vul and by multi-turn, survives
dedup twice by design. Before the fix the split shuffled rows one by one, so such a pair could land on both
sides: the held-out (validation) prompt was trained on verbatim under another wrapper.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from purpcode.data.rules import load_rules
from purpcode.data.schema import TaskRow, read_rows
from purpcode.synthesis.dedup import near_clusters
from purpcode.synthesis.malicious import malicious_drafts
from purpcode.synthesis.pipeline import Item, Synthesis, draft_row, held_out_count, set_files, split_rows
from purpcode.synthesis.text import Draft
from purpcode.synthesis.vul2prompt import run_vul2prompt
from purpcode_operator.plan import StageConfig

# Eight different vulnerable functions (SQL built by concatenation), one per seed.
SQL_SEEDS = [
    f"import sqlite3\n\n\ndef {fn}(conn, {arg}):\n"
    f'    {var} = "SELECT {cols} FROM {table} WHERE {col} = \'" + {arg} + "\'"\n'
    f"    return conn.execute({var}).{fetch}()\n"
    for fn, arg, var, cols, table, col, fetch in [
        ("lookup_owner", "name", "sql", "*", "accounts", "owner", "fetchall"),
        ("find_invoice", "ref", "query", "id, total", "invoices", "reference", "fetchone"),
        ("user_by_mail", "email", "stmt", "uid", "users", "mail", "fetchone"),
        ("orders_for", "customer", "q", "order_id, placed_at", "orders", "cust", "fetchall"),
        ("ticket_status", "ticket", "text", "status", "tickets", "code", "fetchone"),
        ("stock_level", "sku", "command", "qty, warehouse", "inventory", "item_sku", "fetchall"),
        ("books_by", "author", "select", "title, year", "library", "writer", "fetchall"),
        ("session_for", "token", "lookup", "user_id, expires", "sessions", "tok", "fetchone"),
    ]
]


def _finish(config: StageConfig, out: Path, drafts: list[Draft]) -> tuple[list[TaskRow], list[TaskRow]]:
    """Dedup, split and write `drafts` as the real stage does; returns (train, held-out) of their set."""
    synth = Synthesis(config, out, backend_factory=None)
    synth.finish([Item(d.set, draft_row(d), d) for d in drafts], set())
    files = set_files(out, drafts[0].set)
    return read_rows(files["train"]), read_rows(files["heldout"])


def test_a_malicious_request_is_never_in_both_train_and_heldout(
    make_config: Callable[..., StageConfig], tmp_path: Path
) -> None:
    config = make_config(heldOutPerSet=100, heldOutFraction=0.25)
    drafts = malicious_drafts(60, config.seed)
    train, held = _finish(config, tmp_path / "out", drafts)
    assert len(train) + len(held) == 60 and held

    def request(row: TaskRow) -> tuple[str, int]:
        return row.ground_truth["category"], row.ground_truth["request_index"]

    assert {request(r) for r in held}.isdisjoint({request(r) for r in train})


def test_one_seed_window_is_never_in_both_train_and_heldout(
    make_config: Callable[..., StageConfig], tmp_path: Path
) -> None:
    rules = {r.id: r for r in load_rules(cwes=["CWE-89"], detectors=False)}
    seeds = [
        {
            "seed_id": f"CWE-89/model/{i}",
            "rule_id": "CWE-89",
            "origin": "model",
            "code": code,
            "lines": [5],
            "findings": [{"detector_id": "B608"}],
        }
        for i, code in enumerate(SQL_SEEDS)
    ]
    drafts = run_vul2prompt(seeds, rules, ["vul2vul", "multi-turn"], 1)
    config = make_config(heldOutPerSet=100, heldOutFraction=0.4)
    train, held = _finish(config, tmp_path / "out", drafts)
    assert held and train
    # The vul2vul and multi-turn prompts of one seed end in the same request (template + the seed's window).
    assert {r.ground_truth["seed_id"] for r in held}.isdisjoint({r.ground_truth["seed_id"] for r in train})


def test_split_keeps_families_whole_and_respects_the_cap() -> None:
    rows = [
        TaskRow(task_id=f"t{i:02d}", messages=[{"role": "user", "content": f"q{i}"}], oracle="noreject")  # type: ignore[list-item]
        for i in range(20)
    ]
    families = [f"f{i // 3}" for i in range(20)]  # families of 3 (the last of 2)
    k = held_out_count(20, 100, 0.3)
    for seed in range(10):
        train, held = split_rows(rows, per_set=100, fraction=0.3, seed=seed, name="x", families=families)
        fam = dict(zip((r.task_id for r in rows), families, strict=True))
        assert {fam[r.task_id] for r in held}.isdisjoint({fam[r.task_id] for r in train})
        assert len(held) <= k and len(train) + len(held) == 20
        # Order-independent and stable across reruns with the same seed.
        pairs = list(zip(rows, families, strict=True))
        random.Random(seed).shuffle(pairs)
        train2, held2 = split_rows(
            [r for r, _ in pairs],
            per_set=100,
            fraction=0.3,
            seed=seed,
            name="x",
            families=[f for _, f in pairs],
        )
        assert sorted(r.task_id for r in held2) == sorted(r.task_id for r in held)
    # Without families every row is its own family: the held-out size is exact, as before.
    _, held = split_rows(rows, per_set=100, fraction=0.3, seed=1, name="x")
    assert len(held) == k


def test_near_clusters_link_transitively_and_ignore_order() -> None:
    base = "parse the uploaded archive and extract every member into the target folder on disk now"
    texts: list[str] = [
        base,
        base + " quickly please",
        "compute the checksum of a file with a modern hash function and print it in hex",
        base + " quickly please and log it",
        "",
    ]
    roots = near_clusters(texts)
    assert roots[0] == roots[1] == roots[3] == 0
    assert roots[2] == 2 and roots[4] == 4
    perm = [3, 4, 0, 2, 1]
    shuffled = near_clusters([texts[i] for i in perm])
    groups: dict[Any, set[int]] = {}
    for pos, root in enumerate(shuffled):
        groups.setdefault(root, set()).add(perm[pos])
    assert sorted(map(sorted, groups.values())) == [[0, 1, 3], [2], [4]]
