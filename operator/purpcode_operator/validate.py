"""Validate run specs and explain every problem in one line: field path, what is allowed, what was given.

Used by `purpcode validate`, the local runner and the operator (an invalid run gets a Failed condition with these
lines instead of a crash loop).
"""

from __future__ import annotations

import os
import re
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from .api import _LABEL_VALUE, _QUANTITY, ApiModel, PurpCodeRun

_QUANTITY_HINT = "a Kubernetes quantity such as 4, 500m, 1.5, 16Gi, 2e9 (one number, one suffix)"
_LABEL_VALUE_HINT = (
    "a label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(ValueError):
    """A spec failed validation; `problems` holds one entry per field."""

    def __init__(self, problems: list[Problem], source: str = "") -> None:
        self.problems = problems
        self.source = source
        super().__init__("\n".join(str(p) for p in problems))


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _fmt(value: Any) -> str:
    if isinstance(value, float | int) and not isinstance(value, bool):
        return _num(value)
    text = repr(value) if isinstance(value, str) else str(value)
    if isinstance(value, dict | list):
        text = type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The API model that owns the field at `loc` (by wire names), for listing allowed fields."""
    model: Any = PurpCodeRun
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = None
        for name, info in model.model_fields.items():
            if part in (info.alias, name):
                field = info
                break
        if field is None:
            return None
        model = _model_type(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _model_type(annotation: Any) -> Any:
    """Unwrap Optional/list/dict to the BaseModel inside, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, dict):
        for arg in typing.get_args(annotation):
            found = _model_type(arg)
            if found is not None:
                return found
    return None


def _allowed_fields(model: type[BaseModel]) -> str:
    return ", ".join(sorted(info.alias or name for name, info in model.model_fields.items()))


_SCHEDULING_FIELDS = ("nodeSelector", "tolerations", "priorityClassName", "runtimeClassName", "affinity")


def _message(err: Any) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    given = err.get("input")
    got = f", got {_fmt(given)}"
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        parent = _model_at(tuple(err["loc"][:-1]))
        field = str(err["loc"][-1])
        if field in _SCHEDULING_FIELDS and parent is not None and "scheduling" in parent.model_fields:
            # Per-stage nodeSelector/tolerations/priorityClassName moved into a scheduling block (v0.2): say where.
            here = ".".join(str(p) for p in err["loc"][:-1])
            every = "" if here == "spec" else f" (spec.scheduling.{field} sets it for every pod of the run)"
            return f"moved to {here}.scheduling.{field}{every}"
        allowed = f"; allowed here: {_allowed_fields(parent)}" if parent else ""
        return f"unknown field{allowed}"
    if kind == "greater_than":
        return f"must be > {_num(ctx['gt'])}{got}"
    if kind == "greater_than_equal":
        return f"must be >= {_num(ctx['ge'])}{got}"
    if kind == "less_than":
        return f"must be < {_num(ctx['lt'])}{got}"
    if kind == "less_than_equal":
        return f"must be <= {_num(ctx['le'])}{got}"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}{got}"
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == _QUANTITY or "eEinumkKMGTP" in str(ctx.get("pattern", "")):
            return f"must be {_QUANTITY_HINT}{got}"
        if ctx.get("pattern") == _LABEL_VALUE:
            return f"must be {_LABEL_VALUE_HINT}{got}"
        return f"must match {ctx['pattern']}{got}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be an integer{got}"
    if kind == "finite_number":
        return f"must be a finite number (not NaN or infinity){got}"
    if kind in ("float_type", "float_parsing"):
        return f"must be a number{got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false{got}"
    if kind in ("string_type",):
        return f"must be a string{got}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping of fields{got}"
    if kind == "list_type":
        return f"must be a list{got}"
    if kind == "too_short":
        unit = "characters" if isinstance(given, str) else "items"
        return f"must have at least {ctx.get('min_length')} {unit}{got}"
    if kind == "too_long":
        unit = "characters" if isinstance(given, str) else "items"
        return f"must have at most {ctx.get('max_length')} {unit}{got}"
    if kind == "string_too_short":
        return f"must have at least {ctx.get('min_length')} characters{got}"
    if kind == "string_too_long":
        return f"must have at most {ctx.get('max_length')} characters"
    if kind == "value_error":
        return re.sub(r"^Value error, ", "", err["msg"])
    return str(err["msg"])


def problems_from(error: ValidationError) -> list[Problem]:
    """Turn a pydantic error into one Problem per field, paths in the spec's own camelCase."""
    out = []
    for err in error.errors():
        loc = [str(p) if not isinstance(p, int) else f"[{p}]" for p in err["loc"]]
        path = ".".join(loc).replace(".[", "[")
        out.append(Problem(path, _message(err)))
    return out


def validate_run(data: Any, source: str = "") -> PurpCodeRun:
    """Validate one parsed document as a PurpCodeRun or raise SpecError."""
    if not isinstance(data, dict):
        raise SpecError([Problem("", f"expected a PurpCodeRun mapping, got {type(data).__name__}")], source)
    try:
        # Wire names only: a snake_case key would pass pydantic but the API server would prune it.
        return PurpCodeRun.model_validate(data, by_alias=True, by_name=False)
    except ValidationError as err:
        raise SpecError(problems_from(err), source) from None


def load_documents(path: str | os.PathLike[str]) -> list[Any]:
    """Parse a YAML (or JSON) file of one or more documents, strictly (purpcode_operator.specfile); SpecError."""
    from .specfile import read_spec_documents

    return read_spec_documents(path)


def load_runs(path: str | os.PathLike[str]) -> list[PurpCodeRun]:
    """Every PurpCodeRun in a file (other kinds are an error: this is a spec file)."""
    runs = []
    problems: list[Problem] = []
    docs = load_documents(path)
    for i, doc in enumerate(docs):
        try:
            runs.append(validate_run(doc, str(path)))
        except SpecError as err:
            prefix = f"document {i + 1}: " if len(docs) > 1 else ""
            problems += [Problem(p.path, prefix + p.message) if prefix else p for p in err.problems]
    if problems:
        raise SpecError(problems, str(path))
    return runs


def load_run(path: str | os.PathLike[str]) -> PurpCodeRun:
    """The single PurpCodeRun in a file (purpcode_operator.specfile.load_spec_file)."""
    from .specfile import load_spec_file

    return load_spec_file(path)


def validate_files(paths: Iterable[str]) -> dict[str, list[Problem]]:
    """Problems per file (empty list = valid)."""
    results: dict[str, list[Problem]] = {}
    for path in paths:
        try:
            load_run(path)  # one run per file, as `plan` and `run` need
            results[path] = []
        except SpecError as err:
            results[path] = err.problems
    return results


__all__ = [
    "ApiModel",
    "Problem",
    "SpecError",
    "load_documents",
    "load_run",
    "load_runs",
    "problems_from",
    "validate_files",
    "validate_run",
]
