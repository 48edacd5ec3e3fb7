"""`python -m purpcode.rl --config CONFIG --data DIR --model DIR --out DIR`: the RL stage (GRPO)."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m purpcode.rl", description=__doc__)
    parser.add_argument(
        "--config", required=True, help="stage config JSON (purpcode_operator.plan.StageConfig)"
    )
    parser.add_argument(
        "--data", help="synthesis output: <set>.train.jsonl / <set>.heldout.jsonl (default: config)"
    )
    parser.add_argument("--model", help="model to start from (default: the config's paths.model)")
    parser.add_argument("--out", help="stage output directory (default: the config's paths.out)")
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # TRL reads transformers' deprecated `is_gradient_checkpointing` at every generation: the FutureWarning is TRL's
    # to fix, repeats each step, and made healthy runs look unhealthy.
    warnings.filterwarnings(
        "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
    )

    from pydantic import ValidationError

    from purpcode_operator.plan import StageConfig

    try:
        config = StageConfig.load(ns.config)
        config.rl()
    except (OSError, ValueError, ValidationError) as err:
        print(f"error: --config {ns.config}: {err}", file=sys.stderr)
        return 2
    model = ns.model or config.paths.model
    if not model:
        print("error: no model: pass --model DIR (or set paths.model in the config)", file=sys.stderr)
        return 2

    from purpcode.rl.stage import run_stage
    from purpcode.training.settings_guard import SettingsChanged

    try:
        run_stage(
            config, data_dir=ns.data or config.paths.data, model_dir=model, out_dir=ns.out or config.paths.out
        )
    except SettingsChanged as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
