"""The `purpcode` command: validate, plan and inspect runs, run one locally, serve the sandbox or judge.

Subcommands import their heavy modules lazily so `purpcode validate` works in the operator image (no torch).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

EXIT_OK = 0
EXIT_INVALID = 2


def _cmd_validate(args: argparse.Namespace) -> int:
    from purpcode_operator.validate import validate_files

    results = validate_files(args.files)
    bad = 0
    for path, problems in results.items():
        if problems:
            bad += 1
            for problem in problems:
                print(f"{path}: {problem}", file=sys.stderr)
        elif not args.quiet:
            print(f"{path}: ok")
    return EXIT_INVALID if bad else EXIT_OK


def _cmd_plan(args: argparse.Namespace) -> int:
    from purpcode_operator.plan import PlanDefaults, build_plan, config_path
    from purpcode_operator.validate import SpecError, load_run

    try:
        run = load_run(args.file)
    except SpecError as err:
        for problem in err.problems:
            print(f"{args.file}: {problem}", file=sys.stderr)
        return EXIT_INVALID
    plan = build_plan(run, defaults=PlanDefaults.from_env())
    if args.output == "json":
        print(plan.model_dump_json(indent=2))
        return EXIT_OK
    print(
        f"run {plan.run}: {len(plan.stages)} steps; services: {', '.join(sorted(plan.services_needed())) or '-'}"
    )
    for i, stage in enumerate(plan.stages, 1):
        r = stage.resources
        launcher = f"torchrun x{r.nodes} nodes x{max(r.gpus_per_node, 1)}" if stage.distributed else "python"
        print(f"{i}. {stage.name} ({stage.slug})")
        print(f"   image:     {stage.image}")
        print(f"   command:   {' '.join(stage.argv(config_path()))}")
        print(f"   launcher:  {launcher}")
        print(f"   resources: nodes={r.nodes} gpusPerNode={r.gpus_per_node} cpu={r.cpu} memory={r.memory}")
        print(f"   needs:     {', '.join(stage.needs) or '-'}")
    judge = plan.judge
    where = f"deploy {judge.model} ({judge.gpus} GPU)" if judge.deploy else f"external {judge.url}"
    print(f"judge: {where}; sandbox: {plan.sandbox.replicas} replica(s) of {plan.sandbox_image}")
    return EXIT_OK


def _cmd_crd(args: argparse.Namespace) -> int:
    from purpcode_operator.crd import build_crd, render_crd_yaml

    if args.output == "json":
        print(json.dumps(build_crd(), indent=2))
    else:
        sys.stdout.write(render_crd_yaml())
    return EXIT_OK


def _cmd_doctor(args: argparse.Namespace) -> int:
    from purpcode_operator.doctor import main as doctor

    return doctor(args.namespace, args.file, monitors=args.monitors)


def _delegate(target: str, argv: list[str]) -> int:
    """Hand the rest of the command line to a workload module's own `main(argv)`."""
    import importlib

    module_name, func = target.split(":")
    module = importlib.import_module(module_name)
    result: int = getattr(module, func)(argv)
    return result


_DELEGATES = {
    "run": (
        "purpcode.runner:main",
        "Run a spec locally: services + every stage as a subprocess (resumable).",
    ),
    "report": ("purpcode.report:cli", "Re-render the run report of an artifacts directory."),
    "render": (
        "purpcode_operator.render_cli:main",
        "Print every object the operator would create for a run (like `helm template`).",
    ),
    "sandbox": ("purpcode.sandbox.server:main", "The code-execution sandbox service ('sandbox serve')."),
    "judge": ("purpcode.judge_server:main", "A small OpenAI-compatible judge server ('judge serve')."),
}


def version() -> str:
    """The installed distribution's version (the images' tag), or the plan's default from a source checkout."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("purpcode-k8s")
    except PackageNotFoundError:
        from purpcode_operator.plan import DEFAULT_VERSION

        return DEFAULT_VERSION


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="purpcode", description=__doc__)
    parser.add_argument("--version", action="version", version=f"purpcode {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="Check run spec files; exit 2 with one line per problem.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-q", "--quiet", action="store_true", help="Print only problems.")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("plan", help="Print the ordered stage plan the operator and local runner execute.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--output", choices=["text", "json"], default="text")
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("crd", help="Print the PurpCodeRun CRD generated from the API models.")
    p.add_argument("-o", "--output", choices=["yaml", "json"], default="yaml")
    p.set_defaults(func=_cmd_crd)

    p = sub.add_parser("doctor", help="Preflight the current cluster for a run; exit 1 on any failed check.")
    p.add_argument("file", nargs="?", metavar="SPEC", help="The run to check (default: a default run).")
    p.add_argument("-n", "--namespace", help="Default: the spec's, else the kubeconfig context's.")
    p.add_argument("--monitors", action="store_true", help="The chart's Service/PodMonitors are enabled.")
    p.set_defaults(func=_cmd_doctor)

    for name, (_, help_text) in _DELEGATES.items():
        d = sub.add_parser(name, help=help_text, add_help=False)
        d.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _DELEGATES:
        return _delegate(_DELEGATES[argv[0]][0], argv[1:])
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
