"""Write metrics.json (machine-readable, nan as null) and report.md (tables + figures) for people.

The report puts each number next to the study's (Liu et al. 2022) and the project's target so
that a reader can see at a glance what passes, and whether combining classifier and
segmentation beats either alone.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from bonescan.evaluation.metrics import AGE_GROUPS, RULES, STUDY


def clean(value):
    """JSON-safe copy: nan/inf -> None, Paths -> str, numpy scalars -> Python numbers."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_metrics_json(path: Path, document: dict) -> Path:
    path = Path(path)
    path.write_text(json.dumps(clean(document), indent=2, allow_nan=False) + "\n")
    return path


def num(value, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def rate(entry: Optional[dict]) -> str:
    """'92.59 % (50/54)' like the study writes it."""
    if not entry:
        return ""
    value = entry["value"]
    return f"n/a ({entry['text']})" if not math.isfinite(value) else f"{100 * value:.2f} % ({entry['text']})"


def _verdict(passed) -> str:
    return "n/a" if passed is None else ("PASS" if passed else "FAIL")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"] + \
        ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def render(m: dict, context: dict, plots: Dict[str, Path], cases: Sequence[dict]) -> str:
    """report.md text from the metrics dict, the run's context (folders, failures) and the figures."""
    case = m["case_level"]
    lines = [
        "# bonescan evaluation", "",
        f"- predictions: `{context['predictions']}`", f"- truth: `{context['truth']}`",
        f"- {m['n_studies']} studies evaluated ({m['n_metastatic']} metastatic), "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
    ]
    if context["failed"]:
        lines.append(f"- **{len(context['failed'])} studies failed in the batch run** (errors.json, skipped): " +
                     "; ".join(f"`{f['file']}` {f['error']}".strip() for f in context["failed"]))
    if context["missing"]:
        lines.append(f"- {len(context['missing'])} truth studies have no prediction: " + ", ".join(context["missing"]))
    if context["unmatched"]:
        lines.append(f"- {len(context['unmatched'])} prediction files match no truth study: " + ", ".join(context["unmatched"]))
    for row in context["per_study"]:
        for problem in row["problems"]:
            lines.append(f"- {row['study_id']}: {problem}")

    lines += ["", "## Targets", ""]
    lines += _table(["metric", "value", "target", "Liu et al. 2022", "result"],
                    [[t["name"], num(t["value"]), t["target"], num(t["study"]), _verdict(t["passed"])] for t in m["targets"]])

    lines += ["", "## Case level: decision rules", "",
              "Does combining the classifier with the segmentation's lesion evidence help?", ""]
    rows = [[RULES[rule][2], rate(case[rule]["sensitivity"]), rate(case[rule]["specificity"]),
             rate(case[rule]["accuracy"]), num(case[rule]["auc"])] for rule in RULES]
    rows.append(["Liu et al. 2022 (test set)", rate(STUDY["sensitivity"]),
                 rate(STUDY["specificity"]), rate(STUDY["accuracy"]), "n/a"])
    lines += _table(["rule", "sensitivity", "specificity", "accuracy", "ROC AUC"], rows)
    lines += ["", "![ROC curves](roc.png)" if "roc" in plots else ""]

    lines += ["", "## Case level by age group (final decision)", ""]
    rows = []
    for name, _, _ in AGE_GROUPS:
        g, s = case["by_age"][name], STUDY["age_groups"][name]
        rows.append([name, g["n"], rate(g["sensitivity"]), rate(g["specificity"]), rate(g["accuracy"]), num(g["auc"]),
                     f"n={s['n']}" + "".join(f", {k[:4]}. {s[k]}" for k in ("sensitivity", "specificity", "accuracy") if k in s)])
    lines += _table(["age", "n", "sensitivity", "specificity", "accuracy", "ROC AUC", "Liu et al. 2022"], rows)
    lines += ["", "![age groups](age_groups.png)" if "age_groups" in plots else ""]

    seg = m["segmentation"]
    lines += ["", "## Segmentation (Dice)", "",
              "Pooled = over all pixels of all studies; mean = over studies where truth or prediction has the class.", ""]
    rows = [["all", num(seg["lesion"]["pooled"]), num(seg["lesion"]["mean"]), seg["lesion"]["n_studies"],
             num(seg["bladder"]["pooled"]), num(seg["bladder"]["mean"]), seg["bladder"]["n_studies"]]]
    for name, _, _ in AGE_GROUPS:
        g = seg["by_age"][name]
        rows.append([name, num(g["lesion"]["pooled"]), num(g["lesion"]["mean"]), g["lesion"]["n_studies"],
                     num(g["bladder"]["pooled"]), num(g["bladder"]["mean"]), g["bladder"]["n_studies"]])
    rows.append(["Liu et al. 2022", num(STUDY["dice_lesion"]), "", "", num(STUDY["dice_bladder"]), "", ""])
    lines += _table(["age", "lesion pooled", "lesion mean", "studies", "bladder pooled", "bladder mean", "studies"], rows)

    les = m["lesions"]
    lines += ["", "## Lesion level (connected components, 8-connectivity, per view)", "",
              f"- detection sensitivity: {rate(les['detection_sensitivity'])} of true lesions touched by a predicted lesion",
              f"- false-positive lesions: {num(les['false_positives_per_study'], 2)} per study "
              f"({les['false_positives_total']} of {les['predicted_lesions']} predicted, {les['n_studies']} studies)"]

    lines += ["", "## BSTBI", ""]
    lines += _table(["studies", "n", "Pearson r", "Spearman rho", "mean abs. error"],
                    [[k, b["n"], num(b["pearson_r"]), num(b["spearman_rho"]), num(b["mae"], 4)] for k, b in m["bstbi"].items()])
    lines += ["", "![BSTBI scatter](bstbi_scatter.png)" if "bstbi_scatter" in plots else ""]

    sweep = m.get("rule_sweep", {})
    if sweep:
        lines += ["", "## Decision rules (best threshold by Youden J on this set)", "",
                  "Choose the served rule on a tuning set, never on the evaluation set.", ""]
        lines += _table(["score", "ROC AUC", "Youden J", "threshold", "sensitivity", "specificity"],
                        [[name, num(v["auc"]), num(v["youden"]), num(v["threshold"], 3),
                          num(v.get("sensitivity")), num(v.get("specificity"))] for name, v in sweep.items()])

    lines += ["", "## Speed", "",
              f"- seconds per study (from the predictions): mean {num(m['seconds']['mean'], 2)}, "
              f"median {num(m['seconds']['median'], 2)} (Liu et al.: {STUDY['seconds_per_case']})"]

    lines += ["", "## Worst cases", ""]
    lines += _table(["study", "age", "truth", "decision", "probability", "lesion Dice", "true / detected / false-positive lesions"],
                    [[c["study_id"], num(c["age"], 0), "M+" if c["truth_metastatic"] else "M-",
                      {True: "M+", False: "M-", None: "?"}[c["metastatic"]] + (" (wrong)" if c["correct"] is False else ""),
                      num(c["metastasis_probability"], 2), num(c["dice_lesion"]),
                      f"{c['true_lesions']} / {c['detected_lesions']} / {c['false_positive_lesions']}"] for c in cases])
    lines += ["", "Truth outlines green, prediction magenta; lesions solid, bladder dashed.", "",
              "![worst cases](worst_cases.png)" if "worst_cases" in plots else "", ""]
    return "\n".join(lines)


def write_report(path: Path, m: dict, context: dict, plots: Dict[str, Path], cases: Sequence[dict]) -> Path:
    path = Path(path)
    path.write_text(render(m, context, plots, cases))
    return path
