"""Figures that sit next to the numbers in report.md: ROC, age groups, BSTBI scatter, worst cases.

Everything is drawn with matplotlib's Agg backend (no display on servers). Worst cases are shown
in the canonical orientation (posterior mirrored into the anterior one) so both views read alike;
the prediction is brought there with the reader's own inverse mapping.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from bonescan.evaluation.load import truth_labels  # noqa: E402
from bonescan.evaluation.metrics import AGE_GROUPS, RULES, rule_arrays  # noqa: E402
from bonescan.io.canonical import stored_to_canonical  # noqa: E402
from bonescan.labels import BLADDER, LESION  # noqa: E402
from bonescan.study import VIEWS  # noqa: E402

TRUTH_COLOUR, PRED_COLOUR = "#00b050", "#e0007a"


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_roc(results, metrics: dict, path: Path) -> Path:
    """ROC curves of the three decision scores, each with its 0.5-threshold operating point."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="0.7", linestyle=":", linewidth=1)
    for (rule, (_, _, label)), colour in zip(RULES.items(), ("tab:blue", "tab:orange", "tab:green")):
        truth, decision, score = rule_arrays(results, rule)
        keep = np.isfinite(score)
        m = metrics["case_level"][rule]
        if not math.isfinite(m["auc"]):
            continue
        fpr, tpr, _ = roc_curve(truth[keep], score[keep])
        ax.plot(fpr, tpr, color=colour, label=f"{label.split(' (')[0]}: AUC {m['auc']:.3f}")
        sens, spec = m["sensitivity"]["value"], m["specificity"]["value"]
        if math.isfinite(sens) and math.isfinite(spec):
            ax.plot([1 - spec], [sens], "o", color=colour)
    ax.plot([1 - 59 / 69], [50 / 54], "k*", markersize=10, label="Liu et al. 2022")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02),
           title=f"ROC, {metrics['n_studies']} studies (dots: decision at 0.5)")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_age_groups(metrics: dict, path: Path) -> Path:
    """Bars of sensitivity, specificity and accuracy per age group, labelled with their counts."""
    names = [name for name, _, _ in AGE_GROUPS] + ["all"]
    groups = dict(metrics["case_level"]["by_age"], all=metrics["case_level"]["final"])
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.27
    for k, key in enumerate(("sensitivity", "specificity", "accuracy")):
        xs = np.arange(len(names)) + (k - 1) * width
        values = [groups[n][key]["value"] for n in names]
        bars = ax.bar(xs, [v if math.isfinite(v) else 0 for v in values], width, label=key)
        for bar, name in zip(bars, names):
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.01, groups[name][key]["text"],
                    ha="center", va="bottom", fontsize=7)
    ax.axhline(0.95, color="0.5", linestyle="--", linewidth=0.8)
    ax.axhline(0.92, color="0.5", linestyle=":", linewidth=0.8)
    ax.set_xticks(np.arange(len(names)), [f"{n}\n(n={groups[n]['n']})" for n in names])
    ax.set(ylim=(0, 1.3), ylabel="rate", title="Final decision by age group (lines: targets 0.95 / 0.92)")
    ax.legend(loc="upper center", ncol=3, fontsize=8)
    return _save(fig, path)


def plot_bstbi(results, metrics: dict, path: Path) -> Path:
    """Predicted vs true BSTBI with the identity line; metastatic studies in a second colour."""
    truth = np.array([r.truth_bstbi for r in results], float)
    pred = np.array([r.bstbi for r in results], float)
    metastatic = np.array([r.truth_metastatic for r in results], bool)
    fig, ax = plt.subplots(figsize=(5, 5))
    finite = np.concatenate([truth[np.isfinite(truth)], pred[np.isfinite(pred)], [0.0, 1e-3]])
    top = float(finite.max()) * 1.05
    ax.plot([0, top], [0, top], color="0.6", linestyle="--", linewidth=1, label="identity")
    ax.scatter(truth[~metastatic], pred[~metastatic], s=14, color="tab:blue", label="no metastases (truth)")
    ax.scatter(truth[metastatic], pred[metastatic], s=14, color="tab:red", label="metastatic (truth)")
    b = metrics["bstbi"]["all"]
    ax.set(xlabel="true BSTBI", ylabel="predicted BSTBI", xlim=(0, top), ylim=(0, top),
           title=f"BSTBI: Pearson r = {b['pearson_r']:.3f}, MAE = {b['mae']:.3f} (n={b['n']})")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def _outline(ax, mask: np.ndarray, colour: str, style: str, width: float) -> None:
    if mask.any():
        ax.contour(mask.astype(float), levels=[0.5], colors=[colour], linewidths=width, linestyles=style)


def plot_worst_cases(cases: Sequence[dict], truth_dir: Path, pred_dir: Path, path: Path) -> Path:
    """Anterior and posterior counts of the worst studies, truth and predicted outlines overlaid."""
    panels = max(2 * len(cases), 2)
    fig, axes = plt.subplots(1, panels, figsize=(1.9 * panels, 7.4), squeeze=False, gridspec_kw={"wspace": 0.08})
    axes = axes[0]
    if not cases:
        for ax in axes:
            ax.axis("off")
        axes[0].text(0.5, 0.5, "no studies to show", ha="center", va="center")
        return _save(fig, path)
    for k, case in enumerate(cases):
        _, truth, study = truth_labels(case, Path(truth_dir))
        npz = Path(pred_dir) / f"{case['study_id']}_labels.npz"
        pred = None
        if npz.is_file():
            with np.load(npz) as data:
                if tuple(data["labels"].shape) == tuple(study.meta.original_shape):
                    pred = stored_to_canonical(data["labels"], study.meta)
        for v, view in enumerate(VIEWS):
            ax = axes[2 * k + v]
            counts = study.counts[v]
            vmax = np.percentile(counts[counts > 0], 99.5) if np.any(counts > 0) else 1.0
            ax.imshow(counts, cmap="gray_r", vmin=0, vmax=vmax, interpolation="nearest")
            _outline(ax, truth["lesion"][v], TRUTH_COLOUR, "solid", 1.6)
            _outline(ax, truth["bladder"][v], TRUTH_COLOUR, "dashed", 1.6)
            if pred is not None:
                _outline(ax, pred[v] == LESION, PRED_COLOUR, "solid", 0.7)
                _outline(ax, pred[v] == BLADDER, PRED_COLOUR, "dashed", 0.7)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(view[:4].upper(), fontsize=8)
        label = f"{case['study_id']}, truth {'M+' if case['truth_metastatic'] else 'M-'}\np={case['metastasis_probability']:.2f}"
        if case["correct"] is False:
            label += " WRONG"
        if math.isfinite(case["dice_lesion"]):
            label += f", lesion Dice {case['dice_lesion']:.2f}"
        left, right = axes[2 * k].get_position(), axes[2 * k + 1].get_position()
        fig.text((left.x0 + right.x1) / 2, left.y1 + 0.03, label, ha="center", va="bottom", fontsize=8,
                 color="firebrick" if case["correct"] is False else "black")
    handles = [Line2D([], [], color=TRUTH_COLOUR, label="truth"), Line2D([], [], color=PRED_COLOUR, label="prediction"),
               Line2D([], [], color="k", label="lesion (solid)"), Line2D([], [], color="k", linestyle="--", label="bladder (dashed)")]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8)
    fig.suptitle("Worst studies (wrong decisions first, then lowest lesion Dice)", fontsize=10)
    return _save(fig, path)


def write_plots(results, metrics: dict, cases: Sequence[dict], truth_dir: Path, pred_dir: Path, output: Path) -> Dict[str, Path]:
    """All four figures into ``output``; returns name -> path."""
    output = Path(output)
    return {
        "roc": plot_roc(results, metrics, output / "roc.png"),
        "age_groups": plot_age_groups(metrics, output / "age_groups.png"),
        "bstbi_scatter": plot_bstbi(results, metrics, output / "bstbi_scatter.png"),
        "worst_cases": plot_worst_cases(cases, truth_dir, pred_dir, output / "worst_cases.png"),
    }
