"""A held-out split that shares no template with the training split (over-refusal probes).

Why: over-refusal probes are written from a handful of templates. When training and held-out probes come from the
same templates, the held-out over-refusal rate measures how well the model learned those templates, not whether it
over-refuses: a flattering number. Here whole templates are held out: every probe of a held-out template goes to
the held-out split (up to its size; the rest of them are dropped, never trained on), and training keeps only the
other templates. With near-duplicate families given, a training probe whose family has a held-out member is dropped.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from purpcode.data.schema import TaskRow


def split_by_template(
    rows: Sequence[TaskRow],
    templates: Sequence[str],
    *,
    per_set: int,
    fraction: float,
    seed: int,
    name: str,
    families: Sequence[str] | None = None,
) -> tuple[list[TaskRow], list[TaskRow], int]:
    """(train, held-out, dropped) with no template on both sides.

    Templates are shuffled with (seed, name) and held out one by one until their probes reach
    min(per_set, floor(fraction x n)) rows; at least one template is held out when the target is positive and there
    are two or more templates. Held-out rows are the first `target` of those templates' probes (by task id), so
    the held-out split is never larger than the other sets' (heldOutPerSet and heldOutFraction alike).
    """
    if len(templates) != len(rows):
        raise ValueError("split_by_template: templates must name one template per row")
    if families is not None and len(families) != len(rows):
        raise ValueError("split_by_template: families must name one family per row")
    target = max(0, min(per_set, math.floor(fraction * len(rows))))
    distinct = sorted(set(templates))
    if target == 0 or len(distinct) < 2:
        return list(rows), [], 0
    random.Random(f"{seed}:{name}:templates").shuffle(distinct)
    count = {t: templates.count(t) for t in distinct}
    held_templates: set[str] = set()
    covered = 0
    for t in distinct[:-1]:  # never hold out every template: training must keep some
        if covered >= target:
            break
        held_templates.add(t)
        covered += count[t]
    held_pool = sorted(
        (i for i, t in enumerate(templates) if t in held_templates), key=lambda i: rows[i].task_id
    )
    held_idx = held_pool[:target]
    held_families = {families[i] for i in held_idx} if families is not None else set()
    train = [
        r
        for i, r in enumerate(rows)
        if templates[i] not in held_templates and (families is None or families[i] not in held_families)
    ]
    held = [rows[i] for i in held_idx]
    return train, held, len(rows) - len(train) - len(held)
