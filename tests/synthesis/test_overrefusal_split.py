"""Issue 19, point 5: over-refusal probes for training share no template with the held-out (evaluation) probes."""

from __future__ import annotations

from purpcode.data.rules import load_rules
from purpcode.data.splits import split_by_template
from purpcode.synthesis.overrefusal import overrefusal_drafts
from purpcode.synthesis.pipeline import draft_row, split_rows


def _probes() -> tuple[list, list[str]]:
    rules = [r for r in load_rules() if r.kind == "cwe"][:40]
    drafts = overrefusal_drafts(rules, per_cwe=5, seed=666)
    return [draft_row(d) for d in drafts], [d.template for d in drafts]


def test_held_out_templates_are_never_trained_on() -> None:
    rows, templates = _probes()
    assert len(set(templates)) >= 5
    train, held, dropped = split_by_template(
        rows, templates, per_set=800, fraction=0.1, seed=666, name="overrefusal"
    )
    tpl = {r.task_id: t for r, t in zip(rows, templates, strict=True)}
    train_t, held_t = {tpl[r.task_id] for r in train}, {tpl[r.task_id] for r in held}
    assert held and train and not train_t & held_t
    assert len(train) + len(held) + dropped == len(rows)
    # Exactly the target size, like every other set's held-out split (extra probes of a held-out template are
    # dropped, never trained on): a larger held-out set would break heldOutPerSet / heldOutFraction.
    assert len(held) == min(800, int(0.1 * len(rows)))
    # The row records its template, so a resumed pipeline (rows without drafts) splits the same way.
    assert all(r.ground_truth["template"] == tpl[r.task_id] for r in rows)


def test_held_out_cap_drops_the_rest_of_a_held_template() -> None:
    rows, templates = _probes()
    train, held, dropped = split_by_template(rows, templates, per_set=3, fraction=0.5, seed=666, name="o")
    assert len(held) == 3 and dropped > 0
    held_t = {templates[rows.index(r)] for r in held}
    assert not {templates[rows.index(r)] for r in train} & held_t


def test_a_plain_split_would_share_templates() -> None:
    """What the template split fixes: the family split spreads every template over both sides."""
    rows, templates = _probes()
    train, held = split_rows(rows, per_set=800, fraction=0.1, seed=666, name="overrefusal")
    tpl = {r.task_id: t for r, t in zip(rows, templates, strict=True)}
    assert {tpl[r.task_id] for r in train} & {tpl[r.task_id] for r in held}
