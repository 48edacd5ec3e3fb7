"""Reading a spec file, strictly and safely: the one loader `validate`, `plan`, `run`, `render` and `doctor` use.

Any input ends in a PurpCodeRun or a SpecError with one line per problem, never a traceback:
- bytes first: a size cap, no NUL bytes (binary), UTF-8 only (the error names the offset and line);
- YAML (JSON is YAML): safe tags only, duplicate keys refused (YAML says keys are unique; PyYAML would keep the
  last), aliases expanded to at most MAX_NODES nodes (a 551-byte "billion laughs" file otherwise costs seconds and
  hundreds of MB in validation), nesting bounded;
- exactly one document;
- then the API models (strict: integers are integers within int64, numbers finite).
"""

from __future__ import annotations

import os
import re
from typing import Any

import yaml

from .api import PurpCodeRun
from .validate import Problem, SpecError, validate_run

MAX_SPEC_BYTES = 1024 * 1024  # a spec is a few KB; the API server's own object limit is about 1.5 MB
MAX_NODES = 100_000  # nodes after alias expansion; the largest sample spec has a few hundred
MAX_DEPTH = 64

_BASE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_BASE_LOADER):  # type: ignore[misc]
    """SafeLoader that records duplicate keys (one problem each) instead of keeping the last value silently."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[Problem] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` overrides are how merge keys work, not duplicates
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: SafeLoader itself reports it
            if first is None:
                seen[key] = line
            else:
                self.duplicates.append(
                    Problem("", f"line {line}: duplicate key {key!r} (first on line {first}); keep one")
                )
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


# YAML 1.1 (PyYAML) reads `5e-7` as a string: a float needs a dot there. Kubernetes reads it as a number, users
# write learning rates that way, and strict models refuse strings for numbers: resolve YAML 1.2 floats too.
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _expanded_size(root: yaml.Node) -> int | str:
    """Nodes the document expands to (aliases counted at every use), stopping past MAX_NODES; or a problem text."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise _TooDeep
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise _Recursive
        active.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total += size(child, depth + 1)
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += size(k, depth + 1) + size(v, depth + 1)
        active.discard(key)
        sizes[key] = total = min(total, MAX_NODES + 1)
        return total

    try:
        return size(root, 0)
    except _TooDeep:
        return f"nested deeper than {MAX_DEPTH} levels"
    except _Recursive:
        return "a recursive alias (a node that contains itself)"


class _TooDeep(Exception):
    pass


class _Recursive(Exception):
    pass


def _yaml_problem(err: yaml.YAMLError) -> Problem:
    mark = getattr(err, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return Problem("", f"not valid YAML: {where}{problem}")


def decode_spec_bytes(data: bytes) -> str:
    """The file's text, or SpecError: too large, binary, or not UTF-8."""
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(
            [
                Problem(
                    "",
                    f"file is {len(data)} bytes; a spec is at most {MAX_SPEC_BYTES} bytes (is this a spec?)",
                )
            ]
        )
    for bom, name in (
        (b"\xff\xfe\0\0", "UTF-32"),
        (b"\0\0\xfe\xff", "UTF-32"),
        (b"\xff\xfe", "UTF-16"),
        (b"\xfe\xff", "UTF-16"),
    ):
        if data.startswith(bom):
            raise SpecError([Problem("", f"{name} text (byte-order mark); save the file as UTF-8")])
    nul = data.find(b"\0")
    if nul >= 0:
        raise SpecError(
            [Problem("", f"binary file (a NUL byte at offset {nul}); a spec is YAML or JSON text")]
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise SpecError(
            [
                Problem(
                    "",
                    f"not UTF-8 text: byte 0x{data[err.start]:02x} at offset {err.start} (line {line}); "
                    "save the file as UTF-8",
                )
            ]
        ) from None


def parse_spec_text(text: str) -> list[Any]:
    """Every document of a YAML/JSON text, strictly (see the module docstring); SpecError otherwise."""
    loader = _StrictLoader(text)
    docs: list[Any] = []
    problems: list[Problem] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            size = _expanded_size(node)
            if isinstance(size, str):
                problems.append(Problem("", f"document {len(docs) + 1}: {size}"))
                break
            if size > MAX_NODES:
                problems.append(
                    Problem(
                        "",
                        f"document {len(docs) + 1}: its aliases expand to more than {MAX_NODES} nodes "
                        "(an alias bomb?); write the values out instead",
                    )
                )
                break
            doc = loader.construct_document(node)
            if doc is not None:
                docs.append(doc)
    except yaml.YAMLError as err:
        problems.append(_yaml_problem(err))
    except RecursionError:
        problems.append(Problem("", "not valid YAML: nested too deeply"))
    finally:
        loader.dispose()
    problems = loader.duplicates + problems
    if problems:
        raise SpecError(problems)
    return docs


def read_spec_documents(path: str | os.PathLike[str]) -> list[Any]:
    """The parsed documents of a spec file (any number); SpecError for an unreadable or malformed file."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_SPEC_BYTES + 1)
    except OSError as err:
        raise SpecError([Problem("", f"cannot read file: {err.strerror or err}")], str(path)) from None
    try:
        docs = parse_spec_text(decode_spec_bytes(data))
    except SpecError as err:
        raise SpecError(err.problems, str(path)) from None
    if not docs:
        raise SpecError([Problem("", "file holds no document")], str(path))
    return docs


def load_spec_file(path: str | os.PathLike[str]) -> PurpCodeRun:
    """The one PurpCodeRun a spec file holds, validated; SpecError with one line per problem otherwise."""
    docs = read_spec_documents(path)
    if len(docs) != 1:
        raise SpecError(
            [
                Problem(
                    "",
                    f"file holds {len(docs)} documents; a spec file holds exactly one PurpCodeRun "
                    "(split it: one file per run)",
                )
            ],
            str(path),
        )
    return validate_run(docs[0], str(path))


__all__ = [
    "MAX_NODES",
    "MAX_SPEC_BYTES",
    "decode_spec_bytes",
    "load_spec_file",
    "parse_spec_text",
    "read_spec_documents",
]
