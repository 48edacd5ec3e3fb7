"""The first step of every plan: put the base model at `<artifacts>/model/base` once, and fetch released sets.

`python -m purpcode.initializer --config CONFIG --out DIR`

- model.name 'tiny-random': build the tiny random chat model (purpcode.tiny_model) with the spec's `tiny` shape, or
  with `tiny.warmStart` pretrain it on CPU on the toy corpus (purpcode.toy; resumable, deterministic under the seed);
- model.path set: point model/base at that folder on the artifacts volume (a symlink);
- otherwise: `huggingface_hub.snapshot_download(name, revision)` with the token from $HF_TOKEN.
Each result is marked complete (`model/base/.purpcode-complete`); a retried or repeated run skips finished work.
Released sets named in the params (`importDatasets`, `importOrg`) are fetched into `<artifacts>/imports/<name>/`.
`_SUCCESS` is written last in the output folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from purpcode_operator.api import TINY_MODEL_NAME, ModelSpec
from purpcode_operator.layout import SUCCESS_MARKER, Layout
from purpcode_operator.plan import HF_TOKEN_ENV, StageConfig

LOG = logging.getLogger("purpcode.initializer")
COMPLETE = ".purpcode-complete"


class InitError(RuntimeError):
    """The base model (or a released set) could not be provided; the message names the fix."""


def model_source(model: ModelSpec, seed: int) -> str:
    """What model/base holds, as recorded in its completion marker (a different source means redo)."""
    if model.path:
        return f"path:{model.path}"
    if model.name == TINY_MODEL_NAME:
        shape = model.tiny.model_dump(exclude_none=True) if model.tiny else {}
        return f"tiny:{json.dumps(shape, sort_keys=True)}:seed={seed}"
    return f"hub:{model.name}@{model.revision or 'main'}"


def _marker(base: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((base / COMPLETE).read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError):
        return None


def _write_marker(folder: Path, source: str) -> None:
    tmp = folder / f"{COMPLETE}.tmp"
    tmp.write_text(json.dumps({"source": source, "finished_at": time.time()}) + "\n", encoding="utf-8")
    os.replace(tmp, folder / COMPLETE)


def _clear(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def provide_model(
    model: ModelSpec, artifacts: str | Path, *, seed: int, token: str | None = None
) -> dict[str, Any]:
    """Make `<artifacts>/model/base` hold the run's base model; returns what was done (for logs and tests)."""
    base = Path(Layout(str(artifacts)).base_model)
    base.parent.mkdir(parents=True, exist_ok=True)
    source = model_source(model, seed)
    if model.path:
        target = (Path(artifacts) / model.path).resolve()
        if not (target / "config.json").is_file():
            raise InitError(
                f"model.path={model.path!r}: {target} has no config.json; put a Hugging Face model folder there "
                "or drop model.path to download model.name"
            )
        if base.is_symlink() and base.resolve() == target:
            return {"action": "skipped", "source": source}
        _clear(base)
        base.symlink_to(target, target_is_directory=True)
        return {"action": "linked", "source": source, "target": str(target)}
    done = _marker(base)
    if done is not None and done.get("source") == source:
        return {"action": "skipped", "source": source}
    if done is not None or base.is_symlink():
        LOG.warning(
            "model/base holds %s, the run asks for %s: replacing it", done and done.get("source"), source
        )
        _clear(base)
    partial = base.parent / "base.partial"
    if model.name == TINY_MODEL_NAME and model.tiny and model.tiny.warm_start:
        action = _warm_start(model, partial, seed)
    elif model.name == TINY_MODEL_NAME:
        from purpcode.tiny_model import TinyModelConfig, build_tiny_model

        _clear(partial)
        shape = model.tiny.model_dump(exclude={"warm_start"}) if model.tiny else {}
        build_tiny_model(partial, TinyModelConfig(**shape, seed=seed))
        action = "built"
    else:
        _download(model, partial, token)  # keeps base.partial between retries: the hub client resumes
        action = "downloaded"
    _write_marker(partial, source)
    _clear(base)
    os.replace(partial, base)
    return {"action": action, "source": source}


def _warm_start(model: ModelSpec, partial: Path, seed: int) -> str:
    """Pretrain the tiny model on the toy corpus in base.partial; an interrupted build resumes from its own
    checkpoint there (same corpus and settings), so a retried initializer does not start over."""
    from purpcode.tiny_model import TinyModelConfig
    from purpcode.toy.pretrain import PretrainConfig
    from purpcode.toy.warm_start import build_warm_policy

    assert model.tiny is not None and model.tiny.warm_start is not None
    warm = model.tiny.warm_start
    shape = TinyModelConfig(**model.tiny.model_dump(exclude={"warm_start", "vocab_size"}), seed=seed)
    training = PretrainConfig(
        steps=warm.steps,
        batch_size=warm.batch_size,
        learning_rate=warm.learning_rate,
        vocab_size=warm.vocab_size,
    )
    summary = build_warm_policy(partial, shape, training, cwes=list(warm.cwes))
    LOG.info(
        "warm start: %d steps (resumed from %d), loss %.3f -> %.3f in %.0f s",
        summary["steps"],
        summary["resumed_from"],
        summary["loss_first_50"],
        summary["loss_last_50"],
        summary["seconds"],
    )
    return "resumed" if summary["resumed_from"] else "warm-started"


def _download(model: ModelSpec, dest: Path, token: str | None) -> None:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
    except ImportError as err:  # pragma: no cover - ships with transformers
        raise InitError("downloading models needs huggingface_hub (the 'training' extra)") from err
    LOG.info("downloading %s (revision %s) into %s", model.name, model.revision or "main", dest)
    try:
        snapshot_download(
            repo_id=model.name,
            revision=model.revision,
            local_dir=str(dest),
            token=token,
            allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken", "*.py"],
        )
    except (HfHubHTTPError, OfflineModeIsEnabled, OSError, ValueError) as err:
        hint = (
            "set model.tokenSecretRef for a gated model"
            if "401" in str(err) or "403" in str(err)
            else "the pod must reach huggingface.co (or pre-load the model on the volume and set model.path)"
        )
        raise InitError(
            f"cannot download model {model.name!r} ({type(err).__name__}: {err}); {hint}"
        ) from err


def provide_imports(names: list[str], org: str, artifacts: str | Path, *, token: str | None) -> list[str]:
    """Fetch each released set once into <artifacts>/imports/<name>/."""
    from purpcode.data.released import fetch_released_set, released_dir

    done = []
    for name in names:
        fetch_released_set(org, name, released_dir(artifacts, name), token=token)
        done.append(name)
    return done


def run_initializer(config: StageConfig, out: str | Path) -> dict[str, Any]:
    """Provide the base model and any released sets; write `_SUCCESS` in `out` last."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    token = os.environ.get(HF_TOKEN_ENV) or None
    result: dict[str, Any] = {
        "model": provide_model(config.model, config.paths.artifacts, seed=config.seed, token=token)
    }
    LOG.info("base model: %s (%s)", result["model"]["action"], result["model"]["source"])
    names = list(config.params.get("importDatasets") or [])
    if names:
        org = str(config.params.get("importOrg") or "purpcode")
        result["imports"] = provide_imports(names, org, config.paths.artifacts, token=token)
    tmp = out / f".{SUCCESS_MARKER}.tmp"
    tmp.write_text(json.dumps({**result, "finished_at": time.time()}) + "\n", encoding="utf-8")
    os.replace(tmp, out / SUCCESS_MARKER)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m purpcode.initializer", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--config", required=True, help="Stage config JSON (purpcode_operator.plan.StageConfig)."
    )
    parser.add_argument("--out", default=None, help="Output folder (default: the config's paths.out).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from pydantic import ValidationError

    try:
        config = StageConfig.load(args.config)
    except (OSError, ValueError, ValidationError) as err:
        LOG.error("bad stage config %s: %s", args.config, err)
        return 2
    try:
        run_initializer(config, args.out or config.paths.out)
    except InitError as err:
        LOG.error("%s", err)
        return 1
    except RuntimeError as err:  # released-set fetch failures carry their own fix
        LOG.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
