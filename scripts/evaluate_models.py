#!/usr/bin/env python
"""Evaluate a model folder on the evaluation set, the stress set and NEMA NM1, side by side.

    python scripts/evaluate_models.py --model-dir apps/bonescan/model [--n 200] [--output runs/model_eval]

The decision to ship weights rests on this one command (MODEL_CARD.md names it):
- the evaluation set: ``make_phantoms.py --n 200 --seed 7``, never used for training or choices;
- the stress set: ``make_phantoms.py --n 200 --seed 8 --stress``, looks outside the training
  ranges (``bonescan/phantoms/stress.py``); specificity and lesion Dice must stay within 0.10 of
  the evaluation set;
- NEMA NM1 (a real anterior-only scan from pydicom-data): no lesion, called normal.
Both sets are made once into --sets-dir and reused. Writes <output>/{evaluation,stress}/ (the
full report of scripts/evaluate.py each) and <output>/summary.json / summary.md; prints the
table. ``key`` (mean of AUC and lesion Dice over both sets) is the number that must improve
before committed weights are replaced.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

SETS = {"evaluation": {"seed": 7}, "stress": {"seed": 8, "stress": True}}
MARGIN = 0.10  # stress set: specificity and lesion Dice within this of the evaluation set


def ensure_set(folder: Path, n: int, seed: int, stress: bool = False) -> Path:
    """The phantom set in ``folder``, generated once (it depends only on n, seed and stress)."""
    from bonescan.phantoms.export import write_phantom_set

    stamp = folder / "set.json"
    wanted = {"n": n, "seed": seed, "stress": stress}
    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return folder
    overrides = {"stress": True} if stress else {}
    write_phantom_set(folder, n=n, seed=seed, workers=2, preview=True, **overrides)
    stamp.write_text(json.dumps(wanted))
    return folder


def nema_check(analyser) -> dict:
    """The real NEMA NM1 scan (anterior only, no metastases): decision, lesion and bladder pixels."""
    try:
        from pydicom.data import get_testdata_file

        path = get_testdata_file("JPEG-LL.dcm", download=False)
    except Exception:  # noqa: BLE001 - pydicom-data missing: say so, do not fail the evaluation
        path = None
    if not path:
        return {"available": False}
    from bonescan.io import read_study
    from bonescan.labels import BLADDER, LESION

    study = read_study(path)
    labels, result = analyser.analyse(study)
    rows = [int(r) for r in (labels == BLADDER).any(axis=(0, 2)).nonzero()[0]]
    return {"available": True, "metastatic": result["metastatic"], "probability": result["metastasis_probability"],
            "lesion_pixels": int((labels == LESION).sum()), "bladder_pixels": int((labels == BLADDER).sum()),
            "bladder_rows": [rows[0], rows[-1]] if rows else None, "bstbi": result.get("bstbi")}


def _value(target: dict) -> float:
    value = target["value"]
    return math.nan if value is None else float(value)


def side_by_side(metrics: dict) -> list:
    """One row per target: the value on each set, the gap and whether each passed."""
    rows = []
    for index, target in enumerate(metrics["evaluation"]["targets"]):
        stress = metrics["stress"]["targets"][index]
        rows.append({"name": target["name"], "target": target["target"], "evaluation": _value(target),
                     "stress": _value(stress), "gap": _value(stress) - _value(target),
                     "passed_evaluation": target["passed"], "passed_stress": stress["passed"]})
    return rows


def fmt(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=REPO / "apps" / "bonescan" / "model")
    parser.add_argument("--n", type=int, default=200, help="studies per set")
    parser.add_argument("--sets-dir", type=Path, default=REPO / "runs" / "sets")
    parser.add_argument("--output", type=Path, default=REPO / "runs" / "model_eval")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    import evaluate
    from bonescan.analysis import Analyser
    from bonescan.batch import find_studies, run_batch

    if args.threads:
        torch.set_num_threads(args.threads)
    analyser = Analyser.from_model_dir(args.model_dir)
    metrics, seconds = {}, []
    for name, spec in SETS.items():
        folder = ensure_set(args.sets_dir / f"{name}_{args.n}", args.n, spec["seed"], spec.get("stress", False))
        predictions = args.output / name / "predictions"
        summary = run_batch(analyser, find_studies(folder, exclude=[args.output]), predictions, directory=folder)
        seconds += summary.seconds
        document, _ = evaluate.run(predictions, folder, args.output / name, progress=False)
        metrics[name] = document
        print(f"--- {name} set ({folder})\n{evaluate.summary(document)}")
    rows = side_by_side(metrics)
    by_name = {row["name"]: row for row in rows}
    margins = {name: abs(by_name[name]["gap"]) <= MARGIN for name in ("specificity", "lesion Dice (pooled)")}
    key_parts = [by_name["ROC AUC"]["evaluation"], by_name["ROC AUC"]["stress"],
                 by_name["lesion Dice (pooled)"]["evaluation"], by_name["lesion Dice (pooled)"]["stress"]]
    result = {
        "model_dir": str(args.model_dir),
        "model_versions": analyser.versions,
        "threshold": analyser.threshold,
        "threshold_calibrated": analyser.threshold_calibrated,
        "targets": rows,
        "stress_margins_met": margins,
        "key": float(np.nanmean(key_parts)),
        "seconds_per_study_median": float(np.median(seconds)) if seconds else math.nan,
        "nema_nm1": nema_check(analyser),
        "commands": [f"python scripts/make_phantoms.py --n {args.n} --seed 7 --output <sets>/evaluation_{args.n}",
                     f"python scripts/make_phantoms.py --n {args.n} --seed 8 --stress --output <sets>/stress_{args.n}",
                     "python scripts/batch_infer.py + scripts/evaluate.py on each (done here in one process)"],
    }
    lines = ["| measure | target | evaluation set | stress set | stress - evaluation |", "|---|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['target']} | {fmt(r['evaluation'])} | {fmt(r['stress'])} | {fmt(r['gap'])} |" for r in rows]
    nema = result["nema_nm1"]
    lines += ["", f"Stress margins (|gap| <= {MARGIN}): " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in margins.items()),
              f"key (mean AUC and lesion Dice over both sets): {result['key']:.4f}",
              f"median seconds per study (file to JSON, this run): {result['seconds_per_study_median']:.3f}"]
    if nema.get("available"):
        lines.append(f"NEMA NM1: {'metastatic' if nema['metastatic'] else 'no metastases'} "
                     f"(probability {nema['probability']:.3f}), lesion pixels {nema['lesion_pixels']}, "
                     f"bladder pixels {nema['bladder_pixels']} in rows {nema['bladder_rows']}")
    table = "\n".join(lines)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "summary.json").write_text(json.dumps(result, indent=2, default=float))
    (args.output / "summary.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
