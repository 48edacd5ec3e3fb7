"""The plan: pure functions from a PurpCodeRun to the ordered stages both executors run.

The operator renders each StagePlan into a Job (the StageConfig in its pods' annotation); the local runner (`purpcode run`) writes the same
StageConfig to a file and starts the same module as a subprocess. Nothing here touches the cluster or the disk.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .api import (
    TINY_MODEL_NAME,
    AnalyzerSpec,
    EvaluationSpec,
    JudgeSpec,
    ModelSpec,
    OracleSpec,
    PurpCodeRun,
    Resources,
    RLSpec,
    RuleLearningSpec,
    SandboxLimits,
    SandboxSpec,
    Scheduling,
    StageCommon,
    StorageSpec,
    SynthesisSpec,
    stage_spec,
)
from .layout import CLUSTER_ROOT, CONFIG_FILE, CONFIG_MOUNT, Layout

# Order of execution. "initialize" fetches/builds the base model once; "report" renders the run report.
STAGE_ORDER: tuple[str, ...] = ("initialize", "synthesis", "ruleLearning", "rl", "evaluation", "report")
# Kubernetes-friendly names used in child object names and labels.
STAGE_SLUGS: dict[str, str] = {
    "initialize": "init",
    "synthesis": "synthesis",
    "ruleLearning": "rule-learning",
    "rl": "rl",
    "evaluation": "evaluation",
    "report": "report",
}
STAGE_MODULES: dict[str, str] = {
    "initialize": "purpcode.initializer",
    "synthesis": "purpcode.synthesis",
    "ruleLearning": "purpcode.rule_learning",
    "rl": "purpcode.rl",
    "evaluation": "purpcode.evaluation",
    "report": "purpcode.report",
}
# Stages that train and may span GPUs/nodes under torchrun.
TRAINING_STAGES = ("ruleLearning", "rl")
ServiceName = Literal["sandbox", "judge"]
STAGE_SERVICES: dict[str, tuple[ServiceName, ...]] = {
    "initialize": (),
    "synthesis": ("sandbox", "judge"),
    "ruleLearning": ("sandbox", "judge"),
    "rl": ("sandbox", "judge"),
    "evaluation": ("sandbox", "judge"),
    "report": (),
}

DEFAULT_VERSION = "0.1.0"
METRICS_PORT = 9400
SANDBOX_PORT = 8080
JUDGE_PORT = 8000
JUDGE_API_KEY_ENV = "PURPCODE_JUDGE_API_KEY"
HF_TOKEN_ENV = "HF_TOKEN"
GENERATION_API_KEY_ENV = "PURPCODE_GENERATION_API_KEY"


class PlanDefaults(BaseModel):
    """Operator-wide defaults (Helm values): images used when a stage or service names none."""

    model_config = ConfigDict(extra="forbid")

    trainer_image: str = f"ghcr.io/purpcode-k8s/trainer:{DEFAULT_VERSION}"
    sandbox_image: str = f"ghcr.io/purpcode-k8s/sandbox:{DEFAULT_VERSION}"
    judge_image: str = f"ghcr.io/purpcode-k8s/trainer:{DEFAULT_VERSION}"

    @classmethod
    def from_env(cls) -> PlanDefaults:
        """Read overrides from PURPCODE_TRAINER_IMAGE / _SANDBOX_IMAGE / _JUDGE_IMAGE (set by the chart)."""
        values = {
            field: os.environ[f"PURPCODE_{field.upper()}"]
            for field in cls.model_fields
            if os.environ.get(f"PURPCODE_{field.upper()}")
        }
        return cls(**values)


class ServiceEndpoints(BaseModel):
    """Where a stage reaches the run's services (cluster DNS names, or loopback ports locally)."""

    model_config = ConfigDict(extra="forbid")

    sandbox_url: str | None = None
    judge_url: str | None = None
    judge_model: str = "judge"
    judge_api_key_env: str | None = Field(
        default=None, description="Environment variable holding the judge API key (never the key itself)."
    )
    judge_max_tokens: int = 256
    judge_concurrency: int = 1024
    analyzer: AnalyzerSpec = Field(default_factory=AnalyzerSpec)
    sandbox_limits: SandboxLimits = Field(default_factory=SandboxLimits)


class StagePaths(BaseModel):
    """The paths one stage reads and writes."""

    model_config = ConfigDict(extra="forbid")

    artifacts: str
    out: str
    base_model: str
    data: str
    model: str | None = Field(default=None, description="The model this stage starts from (or evaluates).")
    easy_ids: str | None = None


class StageConfig(BaseModel):
    """Everything one stage process needs; written as JSON to the stage pods' annotation or a local file."""

    model_config = ConfigDict(extra="forbid")

    run: str
    namespace: str | None = None
    stage: str
    seed: int
    model: ModelSpec
    params: dict[str, Any] = Field(description="The stage's own spec (camelCase, as in the PurpCodeRun).")
    oracles: OracleSpec
    services: ServiceEndpoints
    paths: StagePaths
    metrics_port: int | None = METRICS_PORT
    gpus_per_node: int = 0
    nodes: int = 1
    enabled_stages: list[str] = Field(default_factory=list)

    # Typed views of `params`, one per stage kind.
    def synthesis(self) -> SynthesisSpec:
        return SynthesisSpec.model_validate(self.params)

    def rule_learning(self) -> RuleLearningSpec:
        return RuleLearningSpec.model_validate(self.params)

    def rl(self) -> RLSpec:
        return RLSpec.model_validate(self.params)

    def evaluation(self) -> EvaluationSpec:
        return EvaluationSpec.model_validate(self.params)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> StageConfig:
        """Read a stage config file; a bad file names the field that is wrong."""
        with open(path, encoding="utf-8") as fh:
            return cls.model_validate(json.load(fh))


class StagePlan(BaseModel):
    """One step of a run: what to start, where, with which config."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="API name: initialize, synthesis, ruleLearning, rl, evaluation, report.")
    slug: str = Field(description="Kubernetes-friendly name used in child names and labels.")
    module: str
    args: list[str]
    image: str
    resources: Resources
    scheduling: Scheduling = Field(
        default_factory=Scheduling, description="The stage's own block over the run's default."
    )
    active_deadline_seconds: int | None = None
    backoff_limit: int = 2
    needs: list[ServiceName] = Field(default_factory=list)
    config: StageConfig

    @property
    def distributed(self) -> bool:
        """Train under torchrun: several nodes, or several GPUs on one node."""
        return self.name in TRAINING_STAGES and (self.resources.nodes > 1 or self.resources.gpus_per_node > 1)

    def argv(self, config_path: str, python: str = "python") -> list[str]:
        """The command for a single process (local runner, single-GPU Job)."""
        return [python, "-m", self.module, "--config", config_path, *self.args]


class JudgePlan(BaseModel):
    """How the judge is provided: a deployment the run owns, or an external URL."""

    model_config = ConfigDict(extra="forbid")

    deploy: bool
    model: str
    image: str | None = None
    gpus: int = 0
    tensor_parallel_size: int = 1
    max_model_len: int = 8192
    replicas: int = 1
    cpu: str = "4"
    memory: str = "64Gi"
    url: str | None = None
    api_key_secret_ref: dict[str, str] | None = None
    scheduling: Scheduling = Field(default_factory=Scheduling)


class RunPlan(BaseModel):
    """The ordered stages of a run plus the services they need."""

    model_config = ConfigDict(extra="forbid")

    run: str
    namespace: str | None
    stages: list[StagePlan]
    sandbox: SandboxSpec
    sandbox_image: str
    sandbox_scheduling: Scheduling = Field(
        default_factory=Scheduling,
        description="The sandbox's block (and runtimeClassName) over the run's default.",
    )
    judge: JudgePlan
    storage: StorageSpec
    seed: int

    def stage(self, name: str) -> StagePlan:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"stage {name!r} is not in the plan (enabled: {[s.name for s in self.stages]})")

    def services_needed(self) -> set[str]:
        return {svc for s in self.stages for svc in s.needs}


def sandbox_service_name(run: str) -> str:
    return f"{run}-sandbox"


def judge_service_name(run: str) -> str:
    return f"{run}-judge"


def cluster_endpoints(run: PurpCodeRun) -> ServiceEndpoints:
    """Service URLs as stage pods see them inside the cluster."""
    ns = run.metadata.namespace or "default"
    judge: JudgeSpec = run.spec.services.judge
    judge_url = judge.url or f"http://{judge_service_name(run.metadata.name)}.{ns}.svc:{JUDGE_PORT}/v1"
    return ServiceEndpoints(
        sandbox_url=f"http://{sandbox_service_name(run.metadata.name)}.{ns}.svc:{SANDBOX_PORT}",
        judge_url=judge_url,
        judge_model=judge.model_name(),
        judge_api_key_env=JUDGE_API_KEY_ENV if judge.api_key_secret_ref else None,
        judge_max_tokens=judge.max_tokens,
        judge_concurrency=judge.concurrency,
        analyzer=run.spec.services.analyzer,
        sandbox_limits=run.spec.services.sandbox.limits,
    )


def enabled_stages(run: PurpCodeRun) -> list[str]:
    """API names of the user-facing stages that are on, in order."""
    return [
        s
        for s in STAGE_ORDER
        if s in STAGE_SLUGS and s not in ("initialize", "report") and stage_spec(run.spec, s).enabled
    ]


def _stage_paths(name: str, layout: Layout, enabled: list[str]) -> StagePaths:
    def model_after(stages: tuple[str, ...]) -> str:
        # The newest model produced by an enabled stage among `stages`, else the base model.
        if "rl" in stages and "rl" in enabled:
            return layout.rl_model
        if "ruleLearning" in stages and "ruleLearning" in enabled:
            return layout.rule_learning_model
        return layout.base_model

    model: str | None = None
    easy_ids: str | None = None
    if name == "ruleLearning":
        model = layout.base_model
    elif name == "rl":
        model = model_after(("ruleLearning",))
        easy_ids = layout.easy_ids if "ruleLearning" in enabled else None
    elif name in ("evaluation", "report"):
        model = model_after(("ruleLearning", "rl"))
    return StagePaths(
        artifacts=str(layout.root),
        out=layout.stage_dir(name),
        base_model=layout.base_model,
        data=layout.data,
        model=model,
        easy_ids=easy_ids,
    )


def _stage_args(name: str, paths: StagePaths) -> list[str]:
    args = ["--out", paths.out]
    if name in ("ruleLearning", "rl", "evaluation"):
        args += ["--data", paths.data]
    if name in ("rl", "evaluation") and paths.model:
        args += ["--model", paths.model]
    if name == "evaluation":
        args += ["--base-model", paths.base_model]
    return args


@functools.lru_cache(maxsize=16)
def _layout(root: str) -> Layout:
    return Layout(root)  # its joined paths are kept; a plan for every run of the operator uses the same root


def build_plan(
    run: PurpCodeRun,
    *,
    defaults: PlanDefaults | None = None,
    artifacts_root: str = CLUSTER_ROOT,
    endpoints: ServiceEndpoints | None = None,
) -> RunPlan:
    """Turn a run into its ordered stage plan. Pure: same input, same plan."""
    defaults = defaults or PlanDefaults()
    spec = run.spec
    layout = _layout(artifacts_root)
    endpoints = endpoints or cluster_endpoints(run)
    enabled = enabled_stages(run)
    stages: list[StagePlan] = []
    for name in STAGE_ORDER:
        if name in ("initialize", "report"):
            common = StageCommon(
                image=spec.stages.synthesis.image,
                resources=Resources(cpu="1", memory="4Gi"),
                backoff_limit=3,
            )
        else:
            common = stage_spec(spec, name)
            if not common.enabled:
                continue
        params: dict[str, Any] = (
            common.model_dump(mode="json", by_alias=True) if name not in ("initialize", "report") else {}
        )
        if name == "rl" and spec.stages.rl.hard_codesec_reward:
            oracles = spec.oracles.model_copy(update={"codesec_no_code_reward": 0.0})
        else:
            oracles = spec.oracles
        paths = _stage_paths(name, layout, enabled)
        config = StageConfig(
            run=run.metadata.name,
            namespace=run.metadata.namespace,
            stage=name,
            seed=spec.seed,
            model=spec.model,
            params=params,
            oracles=oracles,
            services=endpoints,
            paths=paths,
            gpus_per_node=common.resources.gpus_per_node,
            nodes=common.resources.nodes,
            enabled_stages=enabled,
        )
        stages.append(
            StagePlan(
                name=name,
                slug=STAGE_SLUGS[name],
                module=STAGE_MODULES[name],
                args=_stage_args(name, paths),
                image=common.image or defaults.trainer_image,
                resources=common.resources,
                scheduling=common.scheduling.over(spec.scheduling),
                active_deadline_seconds=common.active_deadline_seconds,
                backoff_limit=common.backoff_limit,
                needs=list(STAGE_SERVICES[name]),
                config=config,
            )
        )
    judge = spec.services.judge
    if judge.deploy is not None:
        judge_plan = JudgePlan(
            deploy=True,
            model=judge.deploy.model,
            image=judge.deploy.image or defaults.judge_image,
            gpus=judge.deploy.gpus,
            tensor_parallel_size=judge.deploy.tensor_parallel_size or max(judge.deploy.gpus, 1),
            max_model_len=judge.deploy.max_model_len,
            replicas=judge.deploy.replicas,
            cpu=judge.deploy.cpu,
            memory=judge.deploy.memory,
            scheduling=judge.deploy.scheduling.over(spec.scheduling),
        )
    else:
        judge_plan = JudgePlan(
            deploy=False,
            model=judge.model_name(),
            url=judge.url,
            api_key_secret_ref=judge.api_key_secret_ref.model_dump() if judge.api_key_secret_ref else None,
        )
    sandbox = spec.services.sandbox
    sandbox_scheduling = sandbox.scheduling.over(spec.scheduling)
    if sandbox.runtime_class_name:
        sandbox_scheduling = sandbox_scheduling.model_copy(
            update={"runtime_class_name": sandbox.runtime_class_name}
        )
    return RunPlan(
        run=run.metadata.name,
        namespace=run.metadata.namespace,
        stages=stages,
        sandbox=spec.services.sandbox,
        sandbox_image=spec.services.sandbox.image or defaults.sandbox_image,
        sandbox_scheduling=sandbox_scheduling,
        judge=judge_plan,
        storage=spec.storage,
        seed=spec.seed,
    )


def config_path(config_dir: str = CONFIG_MOUNT) -> str:
    """Where a stage's config file lives inside its pod."""
    return f"{config_dir}/{CONFIG_FILE}"


def is_tiny(model: ModelSpec) -> bool:
    return model.name == TINY_MODEL_NAME
