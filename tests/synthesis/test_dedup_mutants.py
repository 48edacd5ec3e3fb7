"""Prompt dedup's survivors of mutation testing (docs/testing.md), killed through `dedup`, `near_clusters` and
`shingles`: exact shingles, texts without words, exact keys that ignore dict order, the threshold boundary (an
estimated Jaccard exactly equal to it is a duplicate), the recipe defaults (3-grams, 250 permutations, seed 1),
LSH candidates below the threshold, group names holding NUL, and lone surrogates.

The boundary and false-positive pairs below were found by search; each test first checks, with datasketch itself,
that the pair still is what it is meant to be (an estimate of exactly 0.4; an LSH candidate below 0.4), so a change
of datasketch's hashing fails loudly instead of silently making the test pointless.
"""

from __future__ import annotations

from typing import Any

from datasketch import MinHash, MinHashLSH

from purpcode.synthesis.dedup import dedup, near_clusters, shingles

BASE = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec "
    "romeo sierra tango"
)
# estimated Jaccard with BASE exactly 0.4 (100 of 250 permutations, seed 1, 3-grams), and an LSH candidate of it
AT_THRESHOLD = (
    "alpha bravo xray1 victor0 echo yankee1 golf hotel india juliet kilo lima mike november oscar papa quebec "
    "romeo uniform1 tango"
)
# an LSH candidate of BASE whose estimated Jaccard (0.172) is far below the threshold
LSH_FALSE_POSITIVE = (
    "alpha bravo charlie delta echo foxtrot golf hotel uniform2 juliet kilo victor1 mike victor0 whiskey2 papa "
    "quebec xray0 sierra tango"
)
NEAR = BASE.replace("mike", "michael")  # clearly a near duplicate of BASE


def minhash(text: str, num_perm: int = 250, seed: int = 1, ngram: int = 3) -> MinHash:
    m = MinHash(num_perm=num_perm, seed=seed)
    m.update_batch([g.encode() for g in shingles(text, ngram)])
    return m


def lsh_proposes(a: str, b: str) -> bool:
    lsh = MinHashLSH(threshold=0.4, num_perm=250)
    lsh.insert("a", minhash(a))
    return "a" in lsh.query(minhash(b))


def texts(items: list[str], **kw: Any) -> tuple[list[str], dict[str, int]]:
    return dedup(items, exact=lambda t: t, text=lambda t: t, **kw)


def test_shingles_are_exactly_the_word_ngrams() -> None:
    assert shingles("A b, c d", 3) == {"a b ,", "b , c", ", c d"}  # punctuation is a token
    assert shingles("a b c", 3) == {"a b c"}
    assert shingles("a b", 3) == {"a b"}
    assert shingles("", 3) == set() and shingles(" \n\t", 3) == set()


def test_texts_without_words_are_nobodys_near_duplicate() -> None:
    # different rows (exact keys) whose text has no token: nothing to compare, so each is kept
    kept, stats = dedup([("r1", ""), ("r2", "  "), ("r3", BASE)], exact=lambda r: r[0], text=lambda r: r[1])
    assert [r[0] for r in kept] == ["r1", "r2", "r3"] and stats["near_removed"] == 0
    # an empty text first must not stop the texts after it from being linked
    assert near_clusters(["", "  ", BASE, NEAR]) == [0, 1, 2, 2]


def test_exact_keys_ignore_dict_order_and_exact_only_stats() -> None:
    rows = [
        {"role": "user", "content": "write a parser"},
        {"content": "write a parser", "role": "user"},
        {"role": "user", "content": "write a lexer"},
    ]
    kept, stats = dedup(rows, exact=lambda r: r, text=lambda r: r["content"], near=False)
    assert kept == [rows[0], rows[2]]
    assert stats == {"before": 3, "exact_removed": 1, "near_removed": 0, "after": 2}


def test_an_estimate_equal_to_the_threshold_is_a_duplicate_with_the_recipe_defaults() -> None:
    assert minhash(BASE).jaccard(minhash(AT_THRESHOLD)) == 0.4 and lsh_proposes(BASE, AT_THRESHOLD)
    kept, stats = texts([BASE, AT_THRESHOLD])  # defaults: 3-grams, 250 permutations, 0.4, seed 1
    assert kept == [BASE] and stats == {"before": 2, "exact_removed": 0, "near_removed": 1, "after": 1}
    assert near_clusters([BASE, AT_THRESHOLD]) == [0, 0]
    # each setting is used: any other value moves this pair off the boundary
    for other in ({"threshold": 0.41}, {"num_perm": 251}, {"seed": 2}, {"ngram": 4}):
        assert texts([BASE, AT_THRESHOLD], **other)[0] == [BASE, AT_THRESHOLD], other
        assert near_clusters([BASE, AT_THRESHOLD], **other) == [0, 1], other


# More LSH candidates of BASE on both sides of the boundary (seed 1): 100 and 99 of 250 permutations agree.
AT_100 = [
    AT_THRESHOLD,
    "alpha bravo charlie victor2 echo foxtrot golf hotel india yankee1 kilo lima mike november oscar papa quebec "
    "romeo sierra victor1",
    "alpha bravo charlie delta victor1 foxtrot golf hotel india juliet yankee2 uniform1 mike november oscar papa "
    "quebec romeo sierra tango",
    "yankee2 bravo charlie delta xray2 foxtrot golf hotel india juliet kilo lima mike november oscar yankee0 "
    "uniform1 romeo sierra tango",
]
AT_99 = [
    "alpha whiskey1 charlie delta echo foxtrot golf hotel india juliet victor0 lima victor2 november oscar papa "
    "quebec romeo sierra tango",
    "alpha bravo charlie delta echo foxtrot golf hotel whiskey1 juliet yankee2 lima xray0 november oscar papa "
    "quebec romeo sierra tango",
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima xray0 november oscar yankee1 "
    "quebec uniform0 sierra tango",
    "alpha bravo charlie delta uniform1 foxtrot xray0 hotel india juliet kilo lima mike november oscar papa "
    "quebec yankee2 sierra zulu0",
]


def test_the_seed_draws_the_permutations_on_both_sides_of_the_boundary() -> None:
    # Permutations not drawn from the seed (e.g. seed None: random ones) would decide these 8 pairs, whose true
    # Jaccard is 0.38 to 0.44, by chance: all 8 as below with a chance of about 1 in 256.
    for text, agree in [(t, 100) for t in AT_100] + [(t, 99) for t in AT_99]:
        assert minhash(BASE).jaccard(minhash(text)) == agree / 250 and lsh_proposes(BASE, text)
        duplicate = agree == 100
        assert texts([BASE, text])[0] == ([BASE] if duplicate else [BASE, text]), text
        assert near_clusters([BASE, text]) == ([0, 0] if duplicate else [0, 1]), text


def test_an_lsh_candidate_below_the_threshold_is_not_a_duplicate() -> None:
    assert minhash(BASE).jaccard(minhash(LSH_FALSE_POSITIVE)) < 0.4 and lsh_proposes(BASE, LSH_FALSE_POSITIVE)
    assert texts([BASE, LSH_FALSE_POSITIVE])[0] == [BASE, LSH_FALSE_POSITIVE]
    assert near_clusters([BASE, LSH_FALSE_POSITIVE]) == [0, 1]


def test_group_names_are_any_string_even_with_nul() -> None:
    rows = [("a\0b", BASE), ("a\0b", NEAR), ("a", NEAR), ("b", NEAR)]
    kept, stats = dedup(rows, exact=lambda r: r, text=lambda r: r[1], group=lambda r: r[0])
    # the near duplicate in the same group goes; the other groups' copies are not compared with it
    assert kept == [rows[0], rows[2], rows[3]] and stats["near_removed"] == 1


def test_a_lone_surrogate_is_text_like_any_other() -> None:
    # A JSON "\ud800" escape in a prompt used to raise UnicodeEncodeError in dedup (exact key and shingles).
    odd = BASE + " \ud800"
    kept, stats = texts([odd, odd, odd.replace("mike", "michael")])
    assert kept == [odd] and stats == {"before": 3, "exact_removed": 1, "near_removed": 1, "after": 1}
    assert near_clusters([odd, BASE, "\ud800"]) == [0, 0, 2]
