"""`purpcode render SPEC [-o yaml|json]`: every object the operator would create for a run, without a cluster.

Like `helm template`: the dry run people expect before `kubectl apply`. It goes through the operator's own code
(`decide.prepare`: validation, the operator's cluster-wide defaults read from the same environment variables the
chart sets, then `render.render_run`), so what it prints is what the operator creates, object for object. Not
printed: owner references (the run's uid exists only once the run does; the operator adds them) and Events.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from .config import OperatorConfig
from .controller import Controller
from .decide import prepare
from .render import render_run
from .validate import Problem, SpecError, load_documents


class _PlainDumper(yaml.SafeDumper):
    """No anchors and aliases (`labels: *id001`) for the objects that share a dict: each manifest reads alone."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


EXIT_OK = 0
EXIT_INVALID = 2


def render_spec(doc: dict[str, Any], namespace: str | None = None) -> list[dict[str, Any]]:
    """The objects for one PurpCodeRun document (raises SpecError, one problem per field)."""
    if not isinstance(doc, dict):
        raise SpecError([Problem("", f"expected a PurpCodeRun mapping, got {type(doc).__name__}")])
    body = {**doc, "metadata": dict(doc.get("metadata") or {})}
    body["metadata"]["namespace"] = namespace or body["metadata"].get("namespace") or "default"
    settings = Controller.settings_from(OperatorConfig.from_env())
    run, plan = prepare(body, settings)
    return render_run(run, plan, owner=None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="purpcode render",
        description="Print every object the operator would create for a run (artifacts volume, each stage's "
        "Job, services, NetworkPolicies), as `helm template` does.",
    )
    parser.add_argument("file", metavar="SPEC", help="A PurpCodeRun YAML or JSON file (one run).")
    parser.add_argument("-o", "--output", choices=["yaml", "json"], default="yaml")
    parser.add_argument(
        "-n", "--namespace", help="Namespace to render for (default: the spec's, else 'default')."
    )
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        docs = load_documents(args.file)
        if len(docs) != 1:
            raise SpecError([Problem("", f"expected exactly one PurpCodeRun, found {len(docs)} documents")])
        objs = render_spec(docs[0], args.namespace)
    except SpecError as err:
        for problem in err.problems:
            print(f"{args.file}: {problem}", file=sys.stderr)
        return EXIT_INVALID
    if args.output == "json":
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}, indent=2))
    else:
        sys.stdout.write(yaml.dump_all(objs, Dumper=_PlainDumper, sort_keys=False, width=120))
    return EXIT_OK
