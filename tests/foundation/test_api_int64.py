"""Every integer field of the API models refuses what does not fit int64 (the API server's integers).

The check is attached per model to the fields whose annotation can hold an integer (api.ApiModel.__init_subclass__);
this test finds every such field from the resolved annotations, so a field the attachment misses fails here.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import pytest
from pydantic import ValidationError

from purpcode_operator import api


def _models() -> list[type[api.ApiModel]]:
    out: list[type[api.ApiModel]] = []
    todo = list(api.ApiModel.__subclasses__())
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo += cls.__subclasses__()
    return out


def _may_hold_int(annotation: Any) -> bool:
    """Whether a value of this type can itself be an int (not an int inside a list or dict)."""
    if annotation is Any or annotation is int:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _may_hold_int(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_may_hold_int(a) for a in typing.get_args(annotation))
    return False  # a Literal only takes its listed values; containers are not checked (nor were they before)


def _checked_fields(cls: type[api.ApiModel]) -> set[str]:
    return {
        name
        for dec in cls.__pydantic_decorators__.field_validators.values()
        if dec.func.__func__ is api._int64  # type: ignore[attr-defined]
        for name in dec.info.fields
    }


@pytest.mark.parametrize("cls", _models(), ids=lambda c: c.__name__)
def test_every_integer_field_is_checked(cls: type[api.ApiModel]) -> None:
    int_fields = {name for name, info in cls.model_fields.items() if _may_hold_int(info.annotation)}
    assert int_fields <= _checked_fields(cls)


def test_a_huge_integer_is_refused_with_its_path() -> None:
    with pytest.raises(ValidationError) as err:
        api.PurpCodeRunStatus.model_validate(
            {"stages": {"rl": {"attempts": 10**30}}, "observedGeneration": 1}
        )
    assert "64-bit integer" in str(err.value) and "attempts" in str(err.value)
    with pytest.raises(ValidationError, match="64-bit integer"):
        api.SFTSpec.model_validate({"maxSteps": 2**63})
    assert api.StageStatus.model_validate({"attempts": 2**63 - 1}).attempts == 2**63 - 1
