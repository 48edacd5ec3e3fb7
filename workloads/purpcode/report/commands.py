"""Write the report (`report.json`, `report.md`, PNGs) as the plan's last step or on demand."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from purpcode.data.schema import write_json_atomic
from purpcode.report.collect import RunInfo, collect
from purpcode.report.plots import draw_all
from purpcode.report.render import render_markdown
from purpcode_operator.layout import STAGE_DIRS, SUCCESS_MARKER

REPORT_JSON = "report.json"
REPORT_MD = "report.md"


def write_report(root: Path, out: Path, info: RunInfo) -> dict[str, Any]:
    """Collect, plot and render; every file is replaced atomically. Returns the report document."""
    out.mkdir(parents=True, exist_ok=True)
    doc = collect(root, info)
    plots = draw_all(doc, out)
    doc["plots"] = plots
    md = render_markdown(doc, plots)
    tmp = out / f".{REPORT_MD}.tmp"
    tmp.write_text(md, encoding="utf-8")
    tmp.replace(out / REPORT_MD)
    write_json_atomic(out / REPORT_JSON, doc)
    return doc


def stage_main(argv: list[str] | None = None) -> int:
    """`python -m purpcode.report --config C [--out D]`: the report step of a run; `_SUCCESS` last."""
    from purpcode_operator.plan import StageConfig

    p = argparse.ArgumentParser(prog="python -m purpcode.report", description=__doc__)
    p.add_argument("--config", required=True, help="Stage config JSON (StageConfig).")
    p.add_argument("--out", default=None, help="Output directory (default: the config's paths.out).")
    args = p.parse_args(argv)
    cfg = StageConfig.load(args.config)
    out = Path(args.out or cfg.paths.out)
    info = RunInfo(
        run=cfg.run,
        model=cfg.model.name,
        seed=cfg.seed,
        judge=cfg.services.judge_model if cfg.services.judge_url else "",
        enabled_stages=cfg.enabled_stages,
    )
    write_report(Path(cfg.paths.artifacts), out, info)
    (out / SUCCESS_MARKER).write_text("ok\n", encoding="utf-8")
    print(f"report: {out / REPORT_MD}")
    return 0


def artifacts_root(path: Path) -> Path:
    """DIR itself when it holds stage directories, else DIR/artifacts (a `purpcode run` workdir)."""
    if (path / "artifacts").is_dir() and not any((path / d).is_dir() for d in STAGE_DIRS.values()):
        return path / "artifacts"
    return path


def _known_info(root: Path, out: Path) -> RunInfo:
    """What the run was, from an earlier report or the workdir's report config; else the directory name."""
    for candidate in (out / REPORT_JSON, root.parent / "configs" / "report.json"):
        try:
            data = json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if candidate.name == REPORT_JSON and candidate.parent == out and isinstance(data.get("run"), dict):
            return RunInfo.model_validate(data["run"])
        if "stage" in data and "run" in data:  # a StageConfig written by the local runner
            model = data.get("model", {}).get("name", "")
            return RunInfo(
                run=data["run"],
                model=model,
                seed=data.get("seed"),
                judge=(data.get("services") or {}).get("judge_model") or "",
                enabled_stages=data.get("enabled_stages", []),
            )
    name = root.parent.name if root.name == "artifacts" else root.name
    return RunInfo(run=name)


def rerender_main(argv: list[str] | None = None) -> int:
    """`purpcode report DIR [--out D]`: re-render the report of an artifacts directory or a run workdir."""
    p = argparse.ArgumentParser(
        prog="purpcode report", description="Re-render the run report from the artifacts."
    )
    p.add_argument(
        "dir", metavar="DIR", help="An artifacts root, or a `purpcode run` workdir holding artifacts/."
    )
    p.add_argument("--out", default=None, help="Where to write (default: DIR's report/ directory).")
    args = p.parse_args(argv)
    path = Path(args.dir)
    if not path.is_dir():
        print(f"purpcode report: {path} is not a directory", file=sys.stderr)
        return 2
    root = artifacts_root(path)
    if not any((root / d).is_dir() for d in STAGE_DIRS.values() if d != "report"):
        print(
            f"purpcode report: {root} holds no stage output (expected some of "
            f"{', '.join(sorted(set(STAGE_DIRS.values()) - {'report'}))}/)",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out) if args.out else root / STAGE_DIRS["report"]
    write_report(root, out, _known_info(root, out))
    print(f"report: {out / REPORT_MD}")
    return 0
