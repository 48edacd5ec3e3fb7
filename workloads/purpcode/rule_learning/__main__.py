"""`python -m purpcode.rule_learning --config CONFIG --data DIR --out DIR` (see the package docstring)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from pydantic import ValidationError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m purpcode.rule_learning", description=__doc__)
    parser.add_argument(
        "--config", required=True, help="stage config JSON (purpcode_operator.plan.StageConfig)"
    )
    parser.add_argument(
        "--data", help="directory with <set>.train.jsonl files (default: the config's paths.data)"
    )
    parser.add_argument("--out", help="output directory (default: the config's paths.out)")
    parser.add_argument("--model", help="start from this model directory (default: the config's paths.model)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    from purpcode_operator.plan import StageConfig

    try:
        cfg = StageConfig.load(args.config)
        if cfg.stage != "ruleLearning":
            raise ValueError(f"config stage is {cfg.stage!r}: this entry point runs stage 'ruleLearning'")
        cfg.rule_learning()  # validate params early, naming the bad field
    except (OSError, ValueError, ValidationError) as err:
        print(f"error: --config {args.config}: {err}", file=sys.stderr)
        return 2
    if args.model:
        cfg = cfg.model_copy(update={"paths": cfg.paths.model_copy(update={"model": args.model})})

    from purpcode.rule_learning.stage import run

    try:
        summary = run(cfg, data_dir=args.data, out_dir=args.out)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({"stage": "ruleLearning", **summary}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
