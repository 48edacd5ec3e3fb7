"""decide.SpecCache: runs with the same spec validate it once, and a hit decides exactly what a miss would."""

from __future__ import annotations

import pytest
from support.run_specs import tiny_run

from purpcode_operator.decide import SpecCache
from purpcode_operator.validate import SpecError, validate_run


def _doc(name: str, **spec: object) -> dict[str, object]:
    doc = tiny_run(name, **spec)
    doc["metadata"]["namespace"] = "default"
    return doc


def test_same_spec_is_validated_once_and_the_metadata_every_time() -> None:
    cache = SpecCache()
    first = cache.validate(_doc("a"))
    second = cache.validate(_doc("b"))
    assert cache.hits == 1 and second.spec is first.spec
    assert second.metadata.name == "b"
    assert second == validate_run(_doc("b"))  # what a miss gives
    # A hit still validates the metadata: a bad name is refused with its field named.
    with pytest.raises(SpecError) as err:
        cache.validate(_doc("Not_A_Name"))
    assert any(p.path.startswith("metadata.name") for p in err.value.problems)


def test_a_different_or_invalid_spec_is_a_miss_with_the_full_errors() -> None:
    cache = SpecCache(size=1)
    cache.validate(_doc("a"))
    other = cache.validate(_doc("b", seed=7))
    assert cache.hits == 0 and other.spec.seed == 7
    with pytest.raises(SpecError) as err:
        cache.validate(_doc("c", seed=-1))
    assert any(p.path == "spec.seed" for p in err.value.problems)
    with pytest.raises(SpecError):  # nothing invalid was stored
        cache.validate(_doc("d", seed=-1))
    cache.validate(_doc("e"))  # size 1: the first spec was evicted
    assert cache.hits == 0
    cache.validate(_doc("f"))
    assert cache.hits == 1
