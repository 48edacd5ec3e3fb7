"""The PurpCodeRun API (group purpcode.dev, version v1alpha1): the single source of truth for spec and status.

The CRD is generated from these models (`purpcode crd`), `purpcode validate` checks specs with them, the operator
and the local runner both plan from them. Every default is the PurpCode recipe's (arXiv 2507.19060): reward values
{0, 0.8, 1}, rejection threshold 0.5, easy threshold 0.7, KL 0.001, seed 666, and so on. Cross-field rules carry a
CEL twin (`x-kubernetes-validations`) so the API server enforces what `purpcode validate` enforces.

Why one file (past 800 lines): spec and status form one schema from which the CRD is generated, and the
models reference each other throughout; kept together so one read shows the whole API a user writes (as Kubeflow
keeps its types apart from its controllers). Validation helpers live in validate.py, the CEL twins' CRD shape in
crd.py.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

GROUP = "purpcode.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "PurpCodeRun"
PLURAL = "purpcoderuns"
SINGULAR = "purpcoderun"
SHORT_NAMES = ["pcr"]
CATEGORIES = ["purpcode"]

STAGE_NAMES: tuple[str, ...] = ("synthesis", "ruleLearning", "rl", "evaluation")

# Kubernetes' quantity grammar (k8s.io/apimachinery resource.Quantity), non-negative: a number (`1`, `1.5`, `.5`,
# `1.`) then one suffix: binary SI (Ki..Ei), decimal SI (n u m k M G T P E) or a decimal exponent (e3, E-2).
# `1.2.3`, `2Gii`, `5e` and `1KiB` are refused here as the API server refuses them in a pod's resources.
_QUANTITY = r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][-+]?[0-9]+)?$"
# A label value (Kueue's queue-name label carries `queueName`): at most 63 characters, alphanumeric at both ends.
_LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
# A DNS subdomain (PriorityClass and RuntimeClass names).
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# RFC 1035 label: the run's Services are named after it (`<run>-sandbox`), and Service names must start with a letter.
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_RUN_NAME = 40  # children are named <run>-<stage>-...; Job pods add suffixes; labels cap at 63


def cel(
    rule: str, message: str, *, reason: str | None = None, field_path: str | None = None
) -> dict[str, Any]:
    """One x-kubernetes-validations entry."""
    out: dict[str, Any] = {"rule": rule, "message": message}
    if reason:
        out["reason"] = reason
    if field_path:
        out["fieldPath"] = field_path
    return out


INT64_MAX = 2**63 - 1  # Kubernetes integers are int64: the API server refuses anything larger
UINT32_MAX = 2**32 - 1  # numpy's seed range (transformers' set_seed seeds numpy)


class ApiModel(BaseModel):
    """Base: camelCase on the wire, unknown fields rejected (a typo must not be silently ignored).

    Strict like the API server: an integer field takes an integer (not `true`, `"3"` or `3.5`), no number is NaN or
    infinite, and every integer fits int64. Lax coercion would let `validate` pass what `kubectl apply` refuses.
    """

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        validate_default=True,
        strict=True,
        allow_inf_nan=False,
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Attach the int64 check to each model's fields that can hold an integer (their annotation names `int`
        or `Any`). One validator on every field ("*") costs a Python call per field: ~800 per reconcile, most of
        them on strings. tests/foundation/test_api_int64.py checks that no integer field is left out."""
        super().__init_subclass__(**kwargs)
        names = [
            name
            for name, annotation in cls.__dict__.get("__annotations__", {}).items()
            if _MAY_HOLD_INT.search(str(annotation))
        ]
        if names:
            check = field_validator(*names, mode="after", check_fields=False)(classmethod(_int64))
            setattr(cls, f"_int64_{cls.__name__}", check)


_MAY_HOLD_INT = re.compile(r"\b(int|Any)\b")


def _int64(cls: type[ApiModel], value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise ValueError(
            f"must fit a 64-bit integer (at most {INT64_MAX}), got a {len(str(abs(value)))}-digit number"
        )
    return value


# --------------------------------------------------------------------------------------------- shared pieces


class SecretKeyRef(ApiModel):
    """A key in a Secret in the run's namespace (tokens and API keys never appear in the spec itself)."""

    name: str = Field(min_length=1, max_length=253, description="Secret name.")
    key: str = Field(default="token", min_length=1, max_length=253, description="Key inside the Secret.")


class Toleration(ApiModel):
    """A Kubernetes toleration, passed through to the stage's pods."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, ge=0)


_QUALIFIED_NAME = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)


class Affinity(ApiModel):
    """A Kubernetes pod Affinity; each part is passed through as written (the API server validates it)."""

    node_affinity: dict[str, Any] | None = Field(default=None, description="Kubernetes NodeAffinity.")
    pod_affinity: dict[str, Any] | None = Field(default=None, description="Kubernetes PodAffinity.")
    pod_anti_affinity: dict[str, Any] | None = Field(default=None, description="Kubernetes PodAntiAffinity.")


class Scheduling(ApiModel):
    """Where a workload's pods may run. `spec.scheduling` is the run's default; a stage's or a service's own block
    overrides it field by field (a field set there replaces the default's whole value; `{}`/`[]` clear it)."""

    node_selector: dict[str, str] | None = Field(default=None, description="Node labels the pods require.")
    tolerations: list[Toleration] | None = Field(default=None, description="Taints the pods tolerate.")
    priority_class_name: str | None = Field(default=None, max_length=253, pattern=_DNS_SUBDOMAIN)
    runtime_class_name: str | None = Field(default=None, max_length=253, pattern=_DNS_SUBDOMAIN)
    affinity: Affinity | None = Field(default=None, description="Node and pod (anti-)affinity.")

    @field_validator("node_selector")
    @classmethod
    def _labels(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        for key, value in (v or {}).items():
            name = key.rsplit("/", 1)[-1]
            if len(key) > 316 or len(name) > 63 or not _QUALIFIED_NAME.match(key):
                raise ValueError(
                    f"{key!r} is not a label key (an optional DNS prefix, '/', and a name of <= 63 "
                    "characters: letters, digits, '-', '_', '.')"
                )
            if len(value) > 63 or not re.match(_LABEL_VALUE, value):
                raise ValueError(
                    f"the value of {key!r} ({value!r}) is not a label value (<= 63 characters: "
                    "letters, digits, '-', '_', '.', starting and ending with a letter or digit)"
                )
        return v

    def over(self, default: Scheduling) -> Scheduling:
        """This block where it sets a field, else `default`."""
        if all(getattr(self, name) is None for name in Scheduling.model_fields):
            return default  # the usual case (a stage without its own block): nothing to merge
        return Scheduling.model_construct(
            **{
                name: getattr(self, name) if getattr(self, name) is not None else getattr(default, name)
                for name in Scheduling.model_fields
            }
        )


class Resources(ApiModel):
    """Compute for one stage: per node, and how many nodes (multi-node runs use torchrun over an Indexed Job)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.nodes) || self.nodes == 1 || (has(self.gpusPerNode) && self.gpusPerNode > 0)",
                    "multi-node stages need gpusPerNode > 0",
                    field_path=".nodes",
                )
            ]
        }
    )

    gpus_per_node: int = Field(default=0, ge=0, le=16, description="GPUs per node (nvidia.com/gpu).")
    nodes: int = Field(
        default=1, ge=1, le=64, description="Number of nodes; > 1 runs torchrun over an Indexed Job."
    )
    cpu: str = Field(
        default="2", pattern=_QUANTITY, description="CPU request per node (Kubernetes quantity)."
    )
    memory: str = Field(default="8Gi", pattern=_QUANTITY, description="Memory request per node (quantity).")

    @model_validator(mode="after")
    def _multi_node_needs_gpus(self) -> Resources:
        if self.nodes > 1 and self.gpus_per_node == 0:
            raise ValueError("multi-node stages need gpusPerNode > 0 (set nodes: 1 or give GPUs)")
        return self


class GenerationSpec(ApiModel):
    """How a stage generates text: backend and sampling parameters."""

    backend: Literal["auto", "vllm", "transformers", "openai"] = Field(
        default="auto",
        description="auto = vllm when the stage has GPUs, else transformers; openai = an OpenAI-compatible server.",
    )
    temperature: float = Field(default=0.8, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_new_tokens: int = Field(default=4096, ge=1, le=131072)
    batch_size: int = Field(
        default=64, ge=1, description="Prompts per generation call (transformers backend)."
    )
    tensor_parallel_size: int = Field(default=1, ge=1, le=16, description="vLLM tensor parallelism.")
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1, description="vLLM memory fraction.")
    url: str | None = Field(default=None, description="openai backend: base URL ending in /v1.")
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None, description="openai backend: API key Secret."
    )
    model: str | None = Field(
        default=None, description="Model name to generate with; default: the run's model."
    )

    @model_validator(mode="after")
    def _openai_needs_url(self) -> GenerationSpec:
        if self.backend == "openai" and not self.url:
            raise ValueError(
                "backend 'openai' needs url (an OpenAI-compatible base URL such as http://host:8000/v1)"
            )
        return self


class StageCommon(ApiModel):
    """Settings every stage has: on/off, image, scheduling and failure handling."""

    enabled: bool = Field(default=True, description="Run this stage.")
    image: str | None = Field(
        default=None, description="Container image; default: the operator's trainer image."
    )
    resources: Resources = Field(default_factory=Resources)
    scheduling: Scheduling = Field(
        default_factory=Scheduling, description="This stage's scheduling; unset fields: spec.scheduling's."
    )
    active_deadline_seconds: int | None = Field(
        default=None, gt=0, description="Wall-time limit of one attempt."
    )
    backoff_limit: int = Field(
        default=2, ge=0, le=20, description="Retries of a failed stage before the run fails."
    )


# --------------------------------------------------------------------------------------------- model


class ToyWarmStartSpec(ApiModel):
    """CPU pretraining of the tiny model on the toy corpus (purpcode.toy), so the recipe has something to move."""

    steps: int = Field(default=600, ge=1, le=100000, description="Optimizer steps.")
    batch_size: int = Field(default=8, ge=1, le=512, description="Conversations per step.")
    learning_rate: float = Field(default=2e-3, gt=0, le=1)
    vocab_size: int = Field(
        default=4096, ge=300, le=65536, description="The BPE tokenizer trained on the corpus."
    )
    cwes: list[str] = Field(
        default_factory=list,
        description="CWEs of the corpus's security prompts (empty: the whole rules corpus).",
    )


class TinyModelSpec(ApiModel):
    """Shape of the built-in tiny random model (model.name: tiny-random), for CPU runs and tests."""

    hidden_size: int = Field(default=128, ge=16, le=4096)
    num_layers: int = Field(default=2, ge=1, le=64)
    num_heads: int = Field(default=2, ge=1, le=64)
    intermediate_size: int = Field(default=256, ge=16)
    vocab_size: int = Field(default=512, ge=300, le=262144)
    warm_start: ToyWarmStartSpec | None = Field(
        default=None,
        description="Warm-start the tiny model on the toy corpus (vocabSize is then warmStart.vocabSize); "
        "absent: random weights.",
    )


TINY_MODEL_NAME = "tiny-random"


class ModelSpec(ApiModel):
    """The base model to post-train."""

    name: str = Field(
        min_length=1,
        max_length=256,
        description="Hugging Face id (e.g. Qwen/Qwen2.5-14B-Instruct), or 'tiny-random' for the built-in tiny model.",
    )
    revision: str | None = Field(
        default=None, max_length=128, description="Hub revision (branch, tag or commit)."
    )
    path: str | None = Field(
        default=None,
        max_length=1024,
        description="Use a model already on the artifacts volume (relative path) instead of downloading it.",
    )
    token_secret_ref: SecretKeyRef | None = Field(default=None, description="Hub token for gated models.")
    tiny: TinyModelSpec | None = Field(
        default=None, description="Shape of the tiny model (name: tiny-random)."
    )

    @field_validator("name")
    @classmethod
    def _name_shape(cls, v: str) -> str:
        if v == TINY_MODEL_NAME:
            return v
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?", v):
            raise ValueError("must be a Hugging Face id like 'org/model' or 'tiny-random'")
        return v

    @field_validator("path")
    @classmethod
    def _relative_path(cls, v: str | None) -> str | None:
        if v is not None and (v.startswith("/") or ".." in v.split("/")):
            raise ValueError("must be a path relative to the artifacts volume without '..'")
        return v


# --------------------------------------------------------------------------------------------- stages

SynthesisStrategy = Literal["general", "benign2vul", "vul2vul", "jailbreak", "multi-turn"]
ALL_STRATEGIES: tuple[SynthesisStrategy, ...] = (
    "general",
    "benign2vul",
    "vul2vul",
    "jailbreak",
    "multi-turn",
)
ImportableDataset = Literal[
    "vul2prompt-general-oss-26k",
    "vul2prompt-benign2vul-oss-21k",
    "vul2prompt-vul2vul-oss-21k",
    "vul2prompt-jailbreaking-oss-11k",
    "vul2prompt-multi-oss-5k",
    "mal-event-seed-attack-oss-24k",
    "mal-event-jailbreak-single-oss-16k",
    "mal-event-fitd-multi-turn-oss-2k",
    "rl-codesec-78k",
    "rl-secqa-11k",
    "rl-safety-8k-single-turn",
    "code-r1-46k-leetcode2k-kodcode",
]


class DedupSpec(ApiModel):
    """MinHash near-duplicate removal (after exact-hash dedup); recipe: 3-grams, 250 permutations, Jaccard 0.4."""

    ngram: int = Field(default=3, ge=1, le=16)
    num_perm: int = Field(default=250, ge=16, le=1024)
    threshold: float = Field(default=0.4, gt=0, lt=1)


class SynthesisSpec(StageCommon):
    """Stage 1, internal red-teaming: Rule2Code, Vul2Prompt, malicious events, over-refusal probes, utility tasks."""

    source: Literal["generate", "import"] = Field(
        default="generate",
        description="generate = synthesise with the generator model; import = released sets.",
    )
    import_datasets: list[ImportableDataset] = Field(
        default_factory=list, description="Released PurpCode sets to import (source: import), fetched once."
    )
    import_org: str = Field(default="purpcode", description="Hub organisation of the released sets.")
    strategies: list[SynthesisStrategy] = Field(default_factory=lambda: list(ALL_STRATEGIES), min_length=1)
    cwes: list[str] = Field(
        default_factory=list,
        description="Restrict to these CWE ids (e.g. CWE-78); empty = the whole shipped corpus.",
    )
    cwe_catalog_path: str | None = Field(
        default=None, description="MITRE CWE XML catalogue on the artifacts volume, to add all CWEs' texts."
    )
    seeds_per_rule: int = Field(default=4, ge=1, le=1000, description="Rule2Code samples per CWE / detector.")
    prompts_per_seed: int = Field(
        default=1, ge=1, le=100, description="Vul2Prompt prompts per seed and strategy."
    )
    malicious_prompts: int = Field(default=256, ge=0, description="Malicious-event prompts to write.")
    over_refusal_per_cwe: int = Field(
        default=5, ge=0, le=100, description="Benign trigger-word probes per CWE."
    )
    secqa_prompts: int = Field(default=128, ge=0, description="Security Q&A prompts (oracle noreject).")
    utility_tasks: int = Field(default=256, ge=0, description="Coding tasks with tests (oracle correctness).")
    held_out_per_set: int = Field(
        default=800, ge=0, description="Held-out prompts per set (validation and eval)."
    )
    held_out_fraction: float = Field(
        default=0.1, ge=0, lt=1, description="Cap on the held-out share of each set."
    )
    dedup: DedupSpec = Field(default_factory=DedupSpec)
    generation: GenerationSpec = Field(
        default_factory=lambda: GenerationSpec(temperature=0.8, max_new_tokens=2048)
    )
    judge_filter: bool = Field(default=True, description="Filter over-refusal probes with the judge.")

    @model_validator(mode="after")
    def _import_needs_sets(self) -> SynthesisSpec:
        if self.source == "import" and not self.import_datasets:
            raise ValueError("source 'import' needs importDatasets (names of the released sets)")
        return self

    @field_validator("cwes")
    @classmethod
    def _cwe_ids(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if not re.fullmatch(r"CWE-[0-9]{1,5}", c)]
        if bad:
            raise ValueError(f"CWE ids look like 'CWE-78', got {bad}")
        return v


class DeepSpeedSpec(ApiModel):
    """DeepSpeed ZeRO for SFT (the recipe: ZeRO-3)."""

    enabled: bool = Field(default=True, description="Use DeepSpeed (GPU stages; CPU runs can turn it off).")
    zero_stage: Literal[0, 1, 2, 3] = Field(default=3)
    offload_optimizer: bool = False
    offload_params: bool = False


class SFTSpec(ApiModel):
    """SFT hyper-parameters (recipe: lr 5e-6 REX, warmup 32, micro-batch 1, grad-accum 1, seq 4096 packed, bf16)."""

    learning_rate: float = Field(default=5e-6, gt=0, lt=1)
    warmup_steps: int = Field(default=32, ge=0)
    epochs: float = Field(default=1.0, gt=0, le=100)
    max_steps: int = Field(default=-1, ge=-1, description="-1 = run the epochs.")
    max_seq_length: int = Field(default=4096, ge=64, le=131072)
    packing: bool = True
    per_device_batch_size: int = Field(default=1, ge=1, description="Micro-batch per device (recipe: 1).")
    gradient_accumulation_steps: int = Field(default=1, ge=1, description="Recipe: 1.")
    lr_scheduler: Literal["rex", "linear", "cosine", "constant_with_warmup"] = Field(
        default="rex", description="Learning-rate schedule after warmup (recipe: rex, reflected exponential)."
    )
    max_grad_norm: float = Field(default=1.0, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    bf16: bool = Field(default=True, description="bf16 on GPU (ignored on CPU).")
    save_steps: int = Field(default=100, ge=1, description="Checkpoint every N optimizer steps.")
    gradient_checkpointing: bool = True


class RuleLearningSpec(StageCommon):
    """Stage 2: self-distillation under the teacher prompt, oracle rejection sampling, then SFT."""

    samples_per_prompt: int = Field(
        default=8, ge=1, le=64, description="Teacher samples per prompt (best-of-N)."
    )
    sample_fraction: float = Field(
        default=0.25, gt=0, le=1, description="Share of each source of each safety set sampled."
    )
    per_set_cap: int = Field(
        default=4096,
        ge=1,
        description="Most prompts sampled from one source (a released set, or <set>/<strategy> when synthesised).",
    )
    source_caps: dict[str, int] = Field(
        default_factory=lambda: {
            "vul2prompt-vul2vul-oss-21k": 2048,
            "vul2prompt-jailbreaking-oss-11k": 2048,
            "codesec/vul2vul": 2048,
            "codesec/jailbreak": 2048,
        },
        description="Per-source caps replacing perSetCap for the named sources (recipe: 2048 for two sets).",
    )
    secqa_cap: int = Field(default=4096, ge=0, description="Cap on each security Q&A source.")
    multi_turn_whole: bool = Field(
        default=True, description="Take multi-turn conversations whole instead of sampling them (recipe)."
    )
    turn_by_turn: bool = Field(
        default=True,
        description="Distil conversations of user turns only turn by turn: reply to turn 1, append, continue; each "
        "prefix is verified (recipe). Off: answer the last turn with the user turns back to back.",
    )
    utility_prompts: int = Field(
        default=8192, ge=0, description="Cap on utility coding tasks in the mix (recipe: 8192)."
    )
    utility_fraction: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="Share of the utility set sampled before the cap (recipe: 0.25).",
    )
    rejection_threshold: float = Field(default=0.5, ge=0, le=1, description="Keep samples scoring >= this.")
    easy_threshold: float = Field(
        default=0.7, ge=0, le=1, description="Pass rate marking a prompt easy (skip in RL)."
    )
    easy_count: Literal["reference", "fraction"] = Field(
        default="reference",
        description="reference: easy when passes >= easyThreshold x (N - 1) (the reference's count: 5 of 8); "
        "fraction: passes / N >= easyThreshold (6 of 8).",
    )
    generation: GenerationSpec = Field(
        default_factory=lambda: GenerationSpec(temperature=0.8, max_new_tokens=4096)
    )
    sft: SFTSpec = Field(default_factory=SFTSpec)
    deepspeed: DeepSpeedSpec = Field(default_factory=DeepSpeedSpec)


class VLLMRolloutSpec(ApiModel):
    """vLLM rollouts for GRPO (GPU only)."""

    mode: Literal["colocate", "server"] = Field(default="colocate")
    tensor_parallel_size: int = Field(default=2, ge=1, le=16)
    gpu_memory_utilization: float = Field(default=0.6, gt=0, le=1)


RLSetName = Literal["utility", "codesec", "secqa", "malicious"]
RL_SET_NAMES: tuple[RLSetName, ...] = ("utility", "codesec", "secqa", "malicious")
RL_MAX_COMPLETION = 3072  # recipe: RL completes up to 3,072 tokens
EVAL_MAX_NEW_TOKENS = 8192  # the reference's evaluation generation length (temperature 0)
EVAL_LENGTH_MESSAGE = (
    "evaluation.generation.maxNewTokens must be >= rl.maxCompletionLength when both stages run: evaluating shorter "
    "than RL trained "
    "truncates answers the policy learned to write (reference: 8192 at evaluation, 3072 in RL)"
)


class RLSpec(StageCommon):
    """Stage 3: GRPO with single-step dynamic sampling (recipe settings)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.useVllm) || !self.useVllm"
                    " || (has(self.resources) && has(self.resources.gpusPerNode) && self.resources.gpusPerNode > 0)",
                    "useVllm needs resources.gpusPerNode > 0 (vLLM rollouts run on GPUs)",
                    field_path=".useVllm",
                )
            ]
        }
    )

    learning_rate: float = Field(default=5e-7, gt=0, lt=1)
    num_generations: int = Field(default=8, ge=2, le=256, description="Samples per prompt (group size).")
    prompts_per_device: int = Field(default=48, ge=1, description="Prompts per GPU per step (recipe: 48).")
    max_prompt_length: int = Field(default=2048, ge=16)
    max_completion_length: int = Field(default=RL_MAX_COMPLETION, ge=1)
    kl_coef: float = Field(default=0.001, ge=0, description="KL loss coefficient (low-variance KL).")
    clip_ratio: float = Field(default=0.2, gt=0, lt=1)
    entropy_coef: float = Field(default=0.001, ge=0)
    temperature: float = Field(default=1.0, gt=0, le=2)
    epochs: float = Field(default=1.0, gt=0, le=100)
    max_steps: int = Field(default=-1, ge=-1, description="-1 = run the epochs.")
    save_steps: int = Field(default=32, ge=1)
    eval_steps: int = Field(default=16, ge=1)
    held_out_per_set: int = Field(default=800, ge=0, description="Validation prompts held out per set.")
    easy_skip_sets: list[RLSetName] = Field(
        default_factory=lambda: list(RL_SET_NAMES),
        description="RL sets from which rule learning's easy prompts are removed (the reference intends all; as "
        "written its ids match only where its scripts agree on dataset names).",
    )
    dynamic_sampling: Literal["single-step", "refill", "none"] = Field(
        default="single-step", description="single-step (recipe), refill (DAPO-style ablation), none."
    )
    max_oversample: float = Field(default=4.0, ge=1, le=16, description="Cap on prompts generated per batch.")
    zero_variance_std: float = Field(
        default=1e-5, ge=0, description="Groups with reward std <= this are dropped."
    )
    hard_codesec_reward: bool = Field(
        default=False, description="Ablation: 0 (not 0.8) for no-code codesec answers."
    )
    use_vllm: bool | None = Field(default=None, description="Default: on when the stage has GPUs.")
    vllm: VLLMRolloutSpec = Field(default_factory=VLLMRolloutSpec)
    bf16: bool = True
    gradient_checkpointing: bool = True
    deepspeed: DeepSpeedSpec = Field(default_factory=lambda: DeepSpeedSpec(zero_stage=3))

    @model_validator(mode="after")
    def _vllm_needs_gpus(self) -> RLSpec:
        if self.use_vllm and self.resources.gpus_per_node == 0:
            raise ValueError("useVllm needs resources.gpusPerNode > 0 (vLLM rollouts run on GPUs)")
        return self


EvalSuite = Literal["codesec", "malicious", "overrefusal", "secqa", "utility"]
ALL_SUITES: tuple[EvalSuite, ...] = ("codesec", "malicious", "overrefusal", "secqa", "utility")
BenchmarkKind = Literal[
    "cyberseceval-instruct",
    "xstest",
    "humaneval-plus",
    "mbpp-plus",
    "cyberseceval-mitre",
    "cyberseceval-frr",
    "phtest",
    "cweval",
    "codelmsec",
    "xscode",
]


class BenchmarkSpec(ApiModel):
    """A public benchmark file (a directory for cweval) the user supplies on the artifacts volume, in its published
    format."""

    kind: BenchmarkKind
    path: str = Field(min_length=1, description="Path relative to the artifacts volume.")
    limit: int | None = Field(default=None, ge=1)


class EvaluationSpec(StageCommon):
    """Stage 4: safety and utility on held-out prompts, base vs trained, written as a report."""

    suites: list[EvalSuite] = Field(default_factory=lambda: list(ALL_SUITES), min_length=1)
    benchmarks: list[BenchmarkSpec] = Field(default_factory=list)
    max_per_suite: int = Field(default=500, ge=1)
    compare_base: bool = Field(default=True, description="Also evaluate the base model, side by side.")
    generation: GenerationSpec = Field(
        default_factory=lambda: GenerationSpec(temperature=0.0, max_new_tokens=EVAL_MAX_NEW_TOKENS),
        description="Reference: greedy (temperature 0), up to 8192 new tokens.",
    )


class Stages(ApiModel):
    """The four stages, run in this order; each can be disabled."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    " || ".join(
                        f"!has(self.{s}) || !has(self.{s}.enabled) || self.{s}.enabled"
                        for s in ("synthesis", "ruleLearning", "rl", "evaluation")
                    ),
                    "at least one stage must be enabled",
                ),
                cel(
                    "(has(self.rl) && has(self.rl.enabled) && !self.rl.enabled)"
                    " || (has(self.evaluation) && has(self.evaluation.enabled) && !self.evaluation.enabled) || "
                    f"(has(self.evaluation) && has(self.evaluation.generation)"
                    f" && has(self.evaluation.generation.maxNewTokens)"
                    f" ? self.evaluation.generation.maxNewTokens : {EVAL_MAX_NEW_TOKENS})"
                    f" >= (has(self.rl) && has(self.rl.maxCompletionLength)"
                    f" ? self.rl.maxCompletionLength : {RL_MAX_COMPLETION})",
                    EVAL_LENGTH_MESSAGE,
                    field_path=".evaluation.generation.maxNewTokens",
                ),
            ]
        }
    )

    synthesis: SynthesisSpec = Field(default_factory=SynthesisSpec)
    rule_learning: RuleLearningSpec = Field(default_factory=RuleLearningSpec)
    rl: RLSpec = Field(default_factory=RLSpec)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)

    @model_validator(mode="after")
    def _eval_not_shorter_than_rl(self) -> Stages:
        both = self.rl.enabled and self.evaluation.enabled
        if both and self.evaluation.generation.max_new_tokens < self.rl.max_completion_length:
            raise ValueError(EVAL_LENGTH_MESSAGE)
        return self

    @model_validator(mode="after")
    def _one_enabled(self) -> Stages:
        if not any(getattr(self, s).enabled for s in ("synthesis", "rule_learning", "rl", "evaluation")):
            raise ValueError("at least one stage must be enabled")
        return self


# --------------------------------------------------------------------------------------------- services


class SandboxLimits(ApiModel):
    """Per-execution limits of the code sandbox."""

    run_timeout_seconds: float = Field(default=15.0, gt=0, le=600)
    memory_limit_mb: int = Field(default=1024, ge=16, le=65536, alias="memoryLimitMB")
    max_processes: int = Field(default=64, ge=1, le=4096)
    max_output_bytes: int = Field(default=1048576, ge=1024, le=268435456)


class LabelSelector(ApiModel):
    """A Kubernetes label selector (an empty one selects everything)."""

    match_labels: dict[str, str] | None = None
    match_expressions: list[dict[str, Any]] | None = None


class NetworkPeer(ApiModel):
    """A NetworkPolicy peer: pods by label, in namespaces by label (both set: those pods in those namespaces)."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None

    @model_validator(mode="after")
    def _one_selector(self) -> NetworkPeer:
        if self.pod_selector is None and self.namespace_selector is None:
            raise ValueError("needs podSelector, namespaceSelector or both")
        return self


class SandboxSpec(ApiModel):
    """The code-execution service used by the correctness oracle and evaluation."""

    replicas: int = Field(default=2, ge=0, le=256)
    image: str | None = None
    concurrency: int = Field(default=0, ge=0, description="Executions per replica at once; 0 = one per CPU.")
    runtime_class_name: str | None = Field(
        default=None, description="e.g. gvisor, for a second isolation layer."
    )
    cpu: str = Field(default="2", pattern=_QUANTITY)
    memory: str = Field(default="4Gi", pattern=_QUANTITY)
    limits: SandboxLimits = Field(default_factory=SandboxLimits)
    isolation: Literal["auto", "namespaces", "restricted"] = Field(
        default="auto",
        description="auto/restricted: a pod that passes the restricted Pod Security Standard (per-execution "
        "seccomp + Landlock, Linux >= 6.12); namespaces: the bubblewrap jail, which needs a privileged namespace "
        "and Kubernetes >= 1.33 (docs/sandbox.md).",
    )
    scheduling: Scheduling = Field(
        default_factory=Scheduling,
        description="The sandbox pods' scheduling; unset fields: spec.scheduling's (runtimeClassName above wins).",
    )
    metrics_scrapers: list[NetworkPeer] | None = Field(
        default=None,
        description="NetworkPolicy peers (podSelector/namespaceSelector) that may scrape the sandbox's /metrics; "
        "default: the operator's (Helm value sandbox.metricsScrapers).",
    )
    scratch_size: str = Field(
        default="2Gi",
        pattern=_QUANTITY,
        description="sizeLimit of the sandbox pod's scratch emptyDir (/tmp, where restricted-mode executions "
        "write); past it the kubelet evicts the pod and the Deployment replaces it (docs/sandbox.md).",
    )
    allow_weaker_isolation: bool = Field(
        default=False,
        description="Let restricted isolation start on nodes without Landlock ABI 6 (Linux < 6.12, gVisor), "
        "with the protections /healthz lists as missing (PURPCODE_SANDBOX_ALLOW_WEAKER_ISOLATION).",
    )


class JudgeDeploySpec(ApiModel):
    """Deploy a vLLM OpenAI-compatible server for the judge model (recipe: Qwen2.5-32B-Instruct)."""

    model: str = Field(default="Qwen/Qwen2.5-32B-Instruct", min_length=1)
    image: str | None = None
    gpus: int = Field(default=2, ge=0, le=16, description="0 = CPU (the tiny model only).")
    tensor_parallel_size: int | None = Field(default=None, ge=1, le=16, description="Default: gpus.")
    max_model_len: int = Field(default=8192, ge=256)
    replicas: int = Field(default=1, ge=1, le=64)
    cpu: str = Field(default="4", pattern=_QUANTITY)
    memory: str = Field(default="64Gi", pattern=_QUANTITY)
    scheduling: Scheduling = Field(
        default_factory=Scheduling, description="The judge pods' scheduling; unset fields: spec.scheduling's."
    )


class JudgeSpec(ApiModel):
    """The LLM judge for general-safety and noreject: deploy one, or use an external OpenAI-compatible URL."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("has(self.deploy) != has(self.url)", "judge needs exactly one of deploy or url")
            ]
        }
    )

    deploy: JudgeDeploySpec | None = None
    url: str | None = Field(
        default=None, pattern=r"^https?://", description="External base URL ending in /v1."
    )
    model: str | None = Field(
        default=None, description="Model name sent to the endpoint; default: deploy.model."
    )
    api_key_secret_ref: SecretKeyRef | None = None
    max_tokens: int = Field(default=256, ge=1, le=4096, description="Judge output cap (recipe: 256).")
    concurrency: int = Field(default=1024, ge=1, le=65536, description="Judge requests in flight.")

    @model_validator(mode="after")
    def _exactly_one(self) -> JudgeSpec:
        if (self.deploy is None) == (self.url is None):
            raise ValueError("judge needs exactly one of deploy or url")
        return self

    def model_name(self) -> str:
        if self.model:
            return self.model
        return self.deploy.model if self.deploy else "judge"


class AnalyzerSpec(ApiModel):
    """The static analyzer behind the codesec oracle."""

    kind: Literal["bandit", "semgrep", "codeql"] = "bandit"
    min_severity: Literal["LOW", "MEDIUM", "HIGH"] = Field(default="MEDIUM")
    semgrep_rules: str | None = Field(
        default=None, description="semgrep rules path; default: the project's own."
    )


class Services(ApiModel):
    """Services a run needs while its stages run."""

    sandbox: SandboxSpec = Field(default_factory=SandboxSpec)
    judge: JudgeSpec = Field(default_factory=lambda: JudgeSpec(deploy=JudgeDeploySpec()))
    analyzer: AnalyzerSpec = Field(default_factory=AnalyzerSpec)


class FormatSpec(ApiModel):
    """The response-format gate: `## Analysis` (>= 16 chars) then `## Answer` (>= 8 chars), no loops."""

    analysis_min_chars: int = Field(default=16, ge=0)
    answer_min_chars: int = Field(default=8, ge=0)
    repeat_substring_length: int = Field(default=32, ge=4)
    repeat_max_count: int = Field(
        default=8, ge=2, description="A substring repeated this often fails the gate."
    )


class OracleSpec(ApiModel):
    """Reward settings shared by rejection sampling, RL and evaluation (values in {0, 0.8, 1})."""

    format: FormatSpec = Field(default_factory=FormatSpec)
    codesec_no_code_reward: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="Reward for a safe codesec answer without a Python block (0 = hard).",
    )
    correctness_timeout_seconds: float = Field(default=15.0, gt=0, le=600)
    correctness_code_blocks: Literal["all", "python"] = Field(
        default="all",
        description="Code correctness runs: all = every fenced block of the answer joined in order, so a non-Python "
        "block fails the run (the reference); python = the Python blocks only.",
    )


class StorageSpec(ApiModel):
    """The artifacts volume: data sets, checkpoints, models, reports."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.existingClaim) || !has(self.storageClassName)",
                    "storageClassName applies only to a claim the operator creates; drop it with existingClaim",
                )
            ]
        }
    )

    size: str = Field(default="200Gi", pattern=_QUANTITY, max_length=64)
    storage_class_name: str | None = Field(default=None, max_length=253)
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"] = Field(
        default="ReadWriteOnce", description="Multi-node stages need ReadWriteMany."
    )
    existing_claim: str | None = Field(
        default=None, max_length=253, description="Use this PVC instead of creating one."
    )

    @model_validator(mode="after")
    def _claim_xor_class(self) -> StorageSpec:
        if self.existing_claim and self.storage_class_name:
            raise ValueError(
                "storageClassName applies only to a claim the operator creates; drop it with existingClaim"
            )
        return self


# --------------------------------------------------------------------------------------------- the run


class PurpCodeRunSpec(ApiModel):
    """What to post-train, how, and with which services."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.model == oldSelf.model",
                    "model is immutable: create a new run to train another model",
                    field_path=".model",
                ),
                cel(
                    "has(self.seed) == has(oldSelf.seed) && (!has(self.seed) || self.seed == oldSelf.seed)",
                    "seed is immutable once a run exists",
                    field_path=".seed",
                ),
                cel(
                    "has(self.storage) == has(oldSelf.storage) && (!has(self.storage) || self.storage == oldSelf.storage)",
                    "storage is immutable: the artifacts volume cannot move mid-run",
                    field_path=".storage",
                ),
                cel(
                    "!("
                    + " || ".join(
                        f"(has(self.stages) && has(self.stages.{s}) && has(self.stages.{s}.resources)"
                        f" && has(self.stages.{s}.resources.nodes) && self.stages.{s}.resources.nodes > 1)"
                        for s in ("ruleLearning", "rl")
                    )
                    + ") || (has(self.storage) && (has(self.storage.existingClaim)"
                    " || (has(self.storage.accessMode) && self.storage.accessMode == 'ReadWriteMany')))",
                    "multi-node stages need storage.accessMode ReadWriteMany (or an existing RWX claim)",
                    field_path=".storage.accessMode",
                ),
            ]
        }
    )

    model: ModelSpec
    stages: Stages = Field(default_factory=Stages)
    services: Services = Field(default_factory=Services)
    oracles: OracleSpec = Field(default_factory=OracleSpec)
    storage: StorageSpec = Field(default_factory=StorageSpec)
    seed: int = Field(
        default=666, ge=0, le=UINT32_MAX, description="Random seed of every stage (recipe: 666)."
    )
    suspend: bool = Field(
        default=False, description="Suspend the current stage's Job and scale services to zero."
    )
    queue_name: str | None = Field(
        default=None,
        max_length=63,
        pattern=_LABEL_VALUE,
        description="Kueue LocalQueue (a label value); Jobs start suspended for admission.",
    )
    scheduling: Scheduling = Field(
        default_factory=Scheduling,
        description="Default scheduling of every pod of the run (all stages, initialize and report included, "
        "and the judge and sandbox); each stage or service may override fields.",
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None, ge=0, description="Delete the run this long after."
    )
    pending_timeout_seconds: int = Field(
        default=900,
        ge=30,
        description="Fail a stage whose pods stay Pending or cannot pull their image this long.",
    )
    image_pull_secrets: list[str] = Field(default_factory=list)
    service_account_name: str | None = Field(default=None, description="Service account of stage pods.")

    @model_validator(mode="after")
    def _multi_node_storage(self) -> PurpCodeRunSpec:
        multi = self.stages.rl.resources.nodes > 1 or self.stages.rule_learning.resources.nodes > 1
        if multi and not self.storage.existing_claim and self.storage.access_mode != "ReadWriteMany":
            raise ValueError(
                "multi-node stages need storage.accessMode ReadWriteMany (or an existing RWX claim)"
            )
        return self


# --------------------------------------------------------------------------------------------- status

Phase = Literal["Pending", "Running", "Succeeded", "Failed", "Suspended"]
StagePhase = Literal["Pending", "Running", "Succeeded", "Failed", "Skipped", "Suspended"]


class Condition(ApiModel):
    """A Kubernetes-style condition."""

    type: Literal["Ready", "Running", "Succeeded", "Failed", "Suspended"]
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(default="", max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: str | None = None
    observed_generation: int | None = None


class StageStatus(ApiModel):
    """Where one stage stands."""

    phase: StagePhase = "Pending"
    job_name: str | None = None
    attempts: int = Field(default=0, ge=0)
    start_time: str | None = None
    completion_time: str | None = None
    message: str | None = None
    artifact_path: str | None = None
    summary: dict[str, float] = Field(default_factory=dict, description="A few figures (e.g. kept samples).")
    pending_since: str | None = None
    next_retry_time: str | None = None


class PurpCodeRunStatus(ApiModel):
    """Observed state; the operator keeps it true at every transition."""

    phase: Phase = "Pending"
    current_stage: str | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    stages: dict[str, StageStatus] = Field(default_factory=dict)
    observed_generation: int | None = None
    start_time: str | None = None
    completion_time: str | None = None
    message: str | None = None


class ObjectMeta(ApiModel):
    """The metadata fields a spec file needs (the API server owns the rest)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(description="Run name: a DNS label of at most 40 characters that starts with a letter.")
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _dns_label(cls, v: str) -> str:
        if len(v) > MAX_RUN_NAME or not _DNS_LABEL.match(v):
            raise ValueError(
                f"must be a DNS label of at most {MAX_RUN_NAME} characters: lower-case letters, digits and '-', "
                "starting with a letter and ending with a letter or digit (the run's Services are named after it)"
            )
        return v


class PurpCodeRun(ApiModel):
    """A whole PurpCode post-training run."""

    api_version: Literal["purpcode.dev/v1alpha1"] = Field(default="purpcode.dev/v1alpha1", alias="apiVersion")
    kind: Literal["PurpCodeRun"] = "PurpCodeRun"
    metadata: ObjectMeta
    spec: PurpCodeRunSpec
    status: PurpCodeRunStatus | None = None


def stage_spec(spec: PurpCodeRunSpec, stage: str) -> StageCommon:
    """The spec of a stage by its API name (synthesis, ruleLearning, rl, evaluation)."""
    attr = {"ruleLearning": "rule_learning"}.get(stage, stage)
    value: Any = getattr(spec.stages, attr)
    return value  # type: ignore[no-any-return]
