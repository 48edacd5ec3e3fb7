"""Prompt dedup: exact hash over the whole conversation, then MinHash LSH over word n-grams (recipe: 3-grams,
250 permutations, Jaccard 0.4) within groups of prompts written the same way.

Why groups: templated prompts share their template's fixed wording by construction; comparing across templates
would call every pair of templated prompts near-duplicates. Within a group only the varying part is compared.
Across groups the same measure links "families" (one request under several wrappers) that the split keeps whole.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
_TOKEN = re.compile(r"\w+|[^\w\s]")


def shingles(text: str, n: int) -> set[str]:
    """Word n-grams of `text` (lower-cased; punctuation tokens count); the whole text when shorter than n."""
    tokens = _TOKEN.findall(text.lower())
    if len(tokens) <= n:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def exact_key(obj: Any) -> str:
    # ASCII JSON (escapes), so any str encodes: with ensure_ascii=False a lone surrogate (a JSON "\\ud800" escape in
    # a prompt) raised UnicodeEncodeError and stopped the synthesis stage's finish step.
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _minhasher(num_perm: int, seed: int) -> Callable[[set[str]], Any]:
    """MinHash builder whose permutations are drawn once and shared by every hash it makes."""
    from datasketch import MinHash

    template = MinHash(num_perm=num_perm, seed=seed)

    def make(grams: set[str]) -> Any:
        m = MinHash(
            num_perm=num_perm,
            seed=seed,
            permutations=template.permutations,
            scheme=template.scheme,  # datasketch >= 2.0 (the pin): the template's permutation scheme
        )
        m.update_batch([g.encode("utf-8", "surrogatepass") for g in grams])  # any str (lone surrogates too)
        return m

    return make


def dedup(
    items: Sequence[T],
    *,
    exact: Callable[[T], Any],
    text: Callable[[T], str],
    group: Callable[[T], str] = lambda _: "",
    ngram: int = 3,
    num_perm: int = 250,
    threshold: float = 0.4,
    seed: int = 1,
    near: bool = True,
) -> tuple[list[T], dict[str, int]]:
    """Drop exact duplicates, then near-duplicates (first occurrence wins, input order kept)."""
    from datasketch import MinHashLSH

    seen: set[str] = set()
    unique: list[T] = []
    for it in items:
        key = exact_key(exact(it))
        if key in seen:
            continue
        seen.add(key)
        unique.append(it)
    exact_removed = len(items) - len(unique)
    if not near:
        return unique, {
            "before": len(items),
            "exact_removed": exact_removed,
            "near_removed": 0,
            "after": len(unique),
        }

    # One LSH index for all groups (building one computes its band layout, which is not free); candidates from
    # other groups are ignored by their key prefix.
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    hashes: dict[str, Any] = {}
    kept: list[T] = []
    counter: dict[str, int] = defaultdict(int)
    make = _minhasher(num_perm, seed)
    for it in unique:
        grams = shingles(text(it), ngram)
        m = make(grams)
        g_key = group(it)
        # LSH proposes candidates; the estimated Jaccard decides (LSH alone has false positives).
        if grams and any(
            k.rsplit("\0", 1)[0] == g_key and hashes[k].jaccard(m) >= threshold for k in lsh.query(m)
        ):
            continue
        counter[g_key] += 1
        key = f"{g_key}\0{counter[g_key]}"
        lsh.insert(key, m)
        hashes[key] = m
        kept.append(it)
    stats = {
        "before": len(items),
        "exact_removed": exact_removed,
        "near_removed": len(unique) - len(kept),
        "after": len(kept),
    }
    return kept, stats


def near_clusters(
    texts: Sequence[str], *, ngram: int = 3, num_perm: int = 250, threshold: float = 0.4, seed: int = 1
) -> list[int]:
    """For each text, the index of the first text of its cluster: texts whose estimated Jaccard reaches
    `threshold` are linked (transitively), whatever group they were deduplicated in.

    Why: dedup only compares prompts written the same way, so one request wrapped by two templates survives twice;
    the train / held-out split must keep such a family on one side or the held-out set leaks into training.
    Order-independent: every text is indexed before any is queried, and links are symmetric. Run it on deduplicated
    items: then a family holds at most one text per dedup group, which bounds the candidates each query returns.
    """
    from datasketch import MinHashLSH

    make = _minhasher(num_perm, seed)
    grams = [shingles(t, ngram) for t in texts]
    hashes = [make(g) for g in grams]
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    for i, (g, m) in enumerate(zip(grams, hashes, strict=True)):
        if g:
            lsh.insert(str(i), m)
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, (g, m) in enumerate(zip(grams, hashes, strict=True)):
        if not g:
            continue
        for key in lsh.query(m):
            a, b = root(i), root(int(key))
            # Already linked (itself included): skip the Jaccard estimate.
            if a != b and hashes[int(key)].jaccard(m) >= threshold:
                parent[max(a, b)] = min(a, b)
    return [root(i) for i in range(len(texts))]
