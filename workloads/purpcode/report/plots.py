"""The report's PNG plots (matplotlib, Agg backend: no display needed in a pod or CI).

Each function draws one figure from the report document and returns its file name, or None when the run has no
data for it (a disabled stage): the markdown then says "not run" instead of linking a blank image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

BASE_COLOR = "#8c9bab"
TRAINED_COLOR = "#2a7ab9"
PALETTE = ["#2a7ab9", "#e07b39", "#3a9e6f", "#c24a6b", "#7d5fb2", "#b59a2f"]
DPI = 130


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.titleweight": "bold",
            "font.size": 9,
        }
    )
    return plt


def _integer_steps(*axes: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _save(fig: Any, out: Path, name: str) -> str:
    fig.tight_layout()
    tmp = out / f".{name}.tmp.png"
    fig.savefig(tmp, dpi=DPI)
    tmp.replace(out / name)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return name


def _hbar(ax: Any, labels: list[str], values: list[int], color: str, title: str) -> None:
    ys = list(range(len(labels)))[::-1]
    ax.barh(ys, values, color=color)
    ax.set_yticks(ys, labels)
    ax.set_title(title)
    ax.set_xlabel("rows")
    ax.grid(axis="y", visible=False)
    for y, v in zip(ys, values, strict=True):
        ax.text(v, y, f" {v}", va="center", fontsize=8)
    ax.set_xlim(0, max(values, default=1) * 1.18 or 1)


def plot_data(doc: dict[str, Any], out: Path, top_cwes: int = 20) -> str | None:
    """Rows per set (train / held-out), per strategy and per CWE."""
    data = doc["synthesis"]
    if not data["total"]:
        return None
    plt = _plt()
    sets = data["sets"]
    cwes = [(k, v) for k, v in data["by_cwe"].items() if k != "(none)"][:top_cwes]
    fig, axes = plt.subplots(1, 3, figsize=(13, max(3.2, 0.28 * max(len(cwes), len(sets), 6) + 1.2)))
    names = sorted(sets)
    ys = list(range(len(names)))[::-1]
    train = [sets[n]["train"] for n in names]
    held = [sets[n]["heldout"] for n in names]
    axes[0].barh(ys, train, color=TRAINED_COLOR, label="train")
    axes[0].barh(ys, held, left=train, color=BASE_COLOR, label="held-out")
    axes[0].set_yticks(ys, names)
    axes[0].set_title("Rows per set")
    axes[0].set_xlabel("rows")
    axes[0].grid(axis="y", visible=False)
    axes[0].legend(loc="lower right", fontsize=8)
    for y, t, h in zip(ys, train, held, strict=True):
        axes[0].text(t + h, y, f" {t}+{h}", va="center", fontsize=8)
    axes[0].set_xlim(0, max((t + h for t, h in zip(train, held, strict=True)), default=1) * 1.25 or 1)
    strategies = list(data["by_strategy"].items())
    _hbar(axes[1], [k for k, _ in strategies], [v for _, v in strategies], PALETTE[1], "Rows per strategy")
    if cwes:
        _hbar(
            axes[2], [k for k, _ in cwes], [v for _, v in cwes], PALETTE[2], f"Rows per CWE (top {len(cwes)})"
        )
    else:
        axes[2].set_axis_off()
        axes[2].text(0.5, 0.5, "no CWE-tagged rows", ha="center", va="center")
    fig.suptitle(f"Synthesis: {data['total']} rows", fontweight="bold")
    return _save(fig, out, "data_counts.png")


def plot_sft_loss(doc: dict[str, Any], out: Path) -> str | None:
    """Rule-learning SFT loss over optimizer steps."""
    loss = doc["ruleLearning"]["loss"]
    if not loss:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot([p[0] for p in loss], [p[1] for p in loss], marker="o", ms=3, color=TRAINED_COLOR)
    _integer_steps(ax)
    ax.set_title("Rule learning: SFT loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    return _save(fig, out, "sft_loss.png")


def plot_rl(doc: dict[str, Any], out: Path) -> str | None:
    """RL: mean reward per oracle over steps, and the fraction of groups dynamic sampling dropped."""
    rl = doc["rl"]
    rewards = {k: v for k, v in rl["reward"].items() if v}
    dropped = rl["groups_dropped_fraction"]
    if not rewards and not dropped:
        return None
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    for i, (oracle, series) in enumerate(sorted(rewards.items())):
        ax1.plot(
            [p[0] for p in series],
            [p[1] for p in series],
            marker="o",
            ms=3,
            label=oracle,
            color=PALETTE[i % len(PALETTE)],
        )
    if rl["reward_mean"]:
        s = rl["reward_mean"]
        ax1.plot([p[0] for p in s], [p[1] for p in s], ls="--", color="black", lw=1, label="all")
    _integer_steps(ax1, ax2)
    ax1.set_ylim(-0.05, 1.05)
    ax1.set_title("RL: mean reward per oracle")
    ax1.set_xlabel("step")
    ax1.set_ylabel("reward")
    if rewards or rl["reward_mean"]:
        ax1.legend(fontsize=8, loc="best")
    values = [p[1] for series in rewards.values() for p in series]
    if values and max(values) == 0:
        fmt = rl.get("format_pass_rate") or []
        why = f" (format gate passed: {max(p[1] for p in fmt) * 100:.0f}% at best)" if fmt else ""
        ax1.text(
            0.5,
            0.55,
            f"every reward is 0{why}",
            ha="center",
            transform=ax1.transAxes,
            fontsize=9,
            color="#666666",
        )
    if dropped:
        ax2.bar([p[0] for p in dropped], [p[1] for p in dropped], color=PALETTE[1], width=0.6)
    else:
        ax2.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax2.transAxes)
    ax2.set_ylim(0, 1.05)
    ax2.set_title("RL: groups dropped (zero reward variance)")
    ax2.set_xlabel("step")
    ax2.set_ylabel("fraction of groups")
    return _save(fig, out, "rl_rewards.png")


def plot_evaluation(doc: dict[str, Any], out: Path) -> str | None:
    """Each suite's metric for the base and the trained model, side by side."""
    results = doc["evaluation"]["results"]
    if not results or not results.get("suites"):
        return None
    plt = _plt()
    suites = results["suites"]
    labels = [m for m in ("base", "trained") if m in results.get("models", {})]
    fig, ax = plt.subplots(figsize=(8.5, 0.75 * len(suites) + 1.7))
    height = 0.8 / max(1, len(labels))
    ys = list(range(len(suites)))[::-1]
    for j, label in enumerate(labels):
        color = BASE_COLOR if label == "base" else TRAINED_COLOR
        for y, s in zip(ys, suites, strict=True):
            r = s["results"].get(label) or {}
            v = r.get("value")
            pos = y + (len(labels) - 1 - 2 * j) * height / 2
            ax.barh(
                pos, (v or 0) * 100, height=height * 0.95, color=color, label=label if y == ys[0] else None
            )
            text = (
                f" {v * 100:.1f}%  ({r.get('numerator', 0)}/{r.get('judged', 0)})"
                if v is not None
                else " n/a"
            )
            ax.text((v or 0) * 100, pos, text, va="center", fontsize=8)
    for y, s in zip(ys, suites, strict=True):
        d = s.get("delta")
        if d is not None:
            better = abs(d) < 1e-12 or (d < 0) == bool(s["lower_is_better"])
            color = "#555555" if abs(d) < 1e-12 else ("#2e8b57" if better else "#c0392b")
            label = "Δ ±0.0 pp" if abs(d) < 1e-12 else f"Δ {d * 100:+.1f} pp"
            ax.text(103, y, label, va="center", fontsize=9, color=color, fontweight="bold")
    ticks = [
        f"{s['suite']}\n{s['metric_label']} ({'lower' if s['lower_is_better'] else 'higher'} is better)"
        for s in suites
    ]
    ax.set_yticks(ys, ticks)
    ax.set_xlim(0, 128)
    ax.set_xticks([0, 25, 50, 75, 100])
    ax.set_xlabel("%")
    ax.grid(axis="y", visible=False)
    ax.set_title("Evaluation: base vs trained")
    if any(r.get("value") is None for s in suites for r in s["results"].values()):
        fig.text(
            0.01,
            0.01,
            "n/a: no answer got a verdict (e.g. the judge's replies could not be parsed)",
            ha="left",
            va="bottom",
            fontsize=7,
            color="#666666",
        )
    ax.legend(
        loc="upper center",
        bbox_to_anchor=(0.45, -0.07 - 0.25 / len(suites)),
        ncol=2,
        fontsize=8,
        frameon=False,
    )
    return _save(fig, out, "evaluation.png")


def draw_all(doc: dict[str, Any], out: Path) -> dict[str, str | None]:
    out.mkdir(parents=True, exist_ok=True)
    return {
        "data_counts": plot_data(doc, out),
        "sft_loss": plot_sft_loss(doc, out),
        "rl_rewards": plot_rl(doc, out),
        "evaluation": plot_evaluation(doc, out),
    }
