#!/usr/bin/env python
"""Evaluate the diagnosis models' batch predictions against a phantom ground-truth set.

    python scripts/evaluate.py --predictions DIR --truth DIR [--output DIR]

DIR (predictions) holds <study_id>.json and <study_id>_labels.npz per study as written by
scripts/batch_infer.py (and maybe errors.json); --truth is a set from scripts/make_phantoms.py.
Writes metrics.json, report.md, roc.png, age_groups.png, bstbi_scatter.png and worst_cases.png
into --output (default: the predictions folder): case-level sensitivity/specificity/accuracy/AUC
(also per age group and per decision rule), Dice, lesion detection, BSTBI agreement and the
project targets with pass/fail.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bonescan.evaluation.load import EvaluationInputError, evaluate_folder  # noqa: E402
from bonescan.evaluation.metrics import per_study_rows, summarize, worst_cases  # noqa: E402
from bonescan.evaluation.report import num, rate, write_metrics_json, write_report  # noqa: E402


def run(predictions: Path, truth: Path, output: Path, progress: bool = True, worst: int = 4):
    """Evaluate, write every output file; returns (metrics document, {name: path})."""
    results, matching, problems = evaluate_folder(predictions, truth, progress)
    metrics = summarize(results)
    rows = per_study_rows(results)
    cases = worst_cases(rows, worst)
    context = {"predictions": str(predictions), "truth": str(truth), "failed": matching.failed + problems,
               "missing": matching.missing, "unmatched": matching.unmatched, "per_study": rows}
    output.mkdir(parents=True, exist_ok=True)
    from bonescan.evaluation.plots import write_plots  # matplotlib only when we get this far

    paths = write_plots(results, metrics, cases, truth, predictions, output)
    document = dict(metrics, inputs={k: v for k, v in context.items() if k != "per_study"}, per_study=rows)
    paths["metrics"] = write_metrics_json(output / "metrics.json", document)
    paths["report"] = write_report(output / "report.md", metrics, context, paths, cases)
    return document, paths


def summary(m: dict) -> str:
    """A few lines for the terminal."""
    final, seg, b = m["case_level"]["final"], m["segmentation"], m["bstbi"]["all"]
    rules = ", ".join(f"{rule} {num(m['case_level'][rule]['auc'])}" for rule in ("classifier", "segmentation", "final"))
    passed = sum(t["passed"] is True for t in m["targets"])
    failed = [t["name"] for t in m["targets"] if t["passed"] is False]
    undefined = [t["name"] for t in m["targets"] if t["passed"] is None]
    lines = [
        f"{m['n_studies']} studies ({m['n_metastatic']} metastatic)",
        f"sensitivity {rate(final['sensitivity'])}, specificity {rate(final['specificity'])}, "
        f"accuracy {rate(final['accuracy'])}, AUC {num(final['auc'])}",
        f"AUC by rule: {rules}",
        f"Dice lesion {num(seg['lesion']['pooled'])} (mean {num(seg['lesion']['mean'])}), "
        f"bladder {num(seg['bladder']['pooled'])}; lesions detected {rate(m['lesions']['detection_sensitivity'])}, "
        f"{num(m['lesions']['false_positives_per_study'], 2)} false positives per study",
        f"BSTBI Pearson r {num(b['pearson_r'])}, MAE {num(b['mae'], 4)}; without superscans "
        f"r {num(m['bstbi']['without_superscans']['pearson_r'])}, MAE {num(m['bstbi']['without_superscans']['mae'], 4)} "
        f"({m['bstbi']['superscans']['n']} superscans)",
        "decision rules (Youden J, threshold): " + ", ".join(
            f"{k} {num(v['youden'])} @ {num(v['threshold'], 3)}" for k, v in m["rule_sweep"].items()),
        f"targets: {passed}/{len(m['targets'])} passed" + (f"; failed: {', '.join(failed)}" if failed else "")
        + (f"; undefined on this set: {', '.join(undefined)}" if undefined else ""),
    ]
    if m["inputs"]["failed"]:
        lines.append(f"{len(m['inputs']['failed'])} studies failed or unreadable (see report.md)")
    if m["inputs"]["missing"]:
        lines.append(f"{len(m['inputs']['missing'])} truth studies without predictions")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=Path, required=True, help="folder with <study_id>.json and _labels.npz")
    parser.add_argument("--truth", type=Path, required=True, help="phantom set (truth.csv, truth/, DICOM files)")
    parser.add_argument("--output", type=Path, help="where to write the report (default: the predictions folder)")
    parser.add_argument("--worst", type=int, default=4, help="how many worst studies to draw")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        document, paths = run(args.predictions, args.truth, args.output or args.predictions,
                              progress=not args.no_progress, worst=args.worst)
    except EvaluationInputError as exc:
        print(f"evaluate.py: error: {exc}", file=sys.stderr)
        return 2
    print(summary(document))
    for name, path in paths.items():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
