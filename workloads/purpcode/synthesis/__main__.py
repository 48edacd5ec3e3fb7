"""Entry point of the synthesis stage: `python -m purpcode.synthesis --config CONFIG --out DIR`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m purpcode.synthesis", description=__doc__)
    parser.add_argument(
        "--config", required=True, help="Stage config JSON (purpcode_operator.plan.StageConfig)."
    )
    parser.add_argument("--out", default=None, help="Output folder (default: the config's paths.out).")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    log = logging.getLogger("purpcode.synthesis")

    from pydantic import ValidationError

    from purpcode_operator.plan import StageConfig

    try:
        config = StageConfig.load(args.config)
        config.synthesis()  # validate the stage params now, with field names in the error
    except (OSError, ValueError, ValidationError) as err:
        log.error("bad stage config %s: %s", args.config, err)
        return 2
    out = Path(args.out or config.paths.out)

    from purpcode.metrics import StageMetrics
    from purpcode.synthesis.pipeline import run_synthesis

    metrics = StageMetrics(out, run=config.run, stage="synthesis", port=None)
    if config.metrics_port:
        from prometheus_client import start_http_server

        try:
            start_http_server(config.metrics_port, registry=metrics.registry)
        except OSError as err:
            log.warning(
                "metrics port %s unavailable (%s): Prometheus export off, JSONL log still written",
                config.metrics_port,
                err,
            )
    from purpcode.analyzers import AnalyzerError
    from purpcode.generation import GenerationError
    from purpcode.oracles.judge import JudgeError

    try:
        manifest = run_synthesis(config, out, metrics=metrics)
    except (GenerationError, JudgeError, AnalyzerError, ConnectionError) as err:
        # A service or model problem: say which, exit non-zero; finished steps stay checkpointed for the retry.
        log.error("synthesis failed: %s: %s", type(err).__name__, err)
        return 1
    sets = ", ".join(f"{k}={v['train']}+{v['heldout']}" for k, v in manifest["sets"].items())
    log.info("synthesis done in %s: %s (train+heldout)", out, sets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
