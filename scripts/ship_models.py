#!/usr/bin/env python
"""Ship trained weights with the repository: checked, only when the evaluation improved, with a model card.

    python scripts/train.py --minutes 120 --model-dir runs/candidate_model --work-dir runs/train
    python scripts/evaluate_models.py --model-dir runs/candidate_model --output runs/candidate_eval
    python scripts/ship_models.py --from runs/candidate_model --evaluation runs/candidate_eval/summary.json \
        --work-dir runs/train --trained-with "python scripts/train.py --minutes 120 ..."

Copies ``<kind>.safetensors``, ``<kind>.json`` and ``decision.json`` into apps/bonescan/model/,
writes ``evaluation.json`` and ``MODEL_CARD.md`` (data, commands, iterations and hours, the
evaluation and stress-set figures, intended use and limitations, each file's size and sha256).
Refuses when a file does not match its record, when the weights together exceed 60 MB, or when
the evaluation ``key`` is not above the shipped one (``--force`` overrides only the last).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bonescan.versions import KINDS, read_version  # noqa: E402
from bonescan.weights import check_file, weights_file  # noqa: E402
from evaluate_models import fmt  # noqa: E402  (the same numbers, printed the same way)

SHIPPED = REPO / "apps" / "bonescan" / "model"
LIMIT_BYTES = 60 * 1000 * 1000
EVALUATION_FILE = "evaluation.json"


def curve(work_dir: Path, kind: str) -> str:
    """The validation history of a training run as a compact table (the learning curve in numbers)."""
    path = work_dir / f"{kind}_history.json"
    if not path.exists():
        return "(no history)"
    history = json.loads(path.read_text())
    keys = ["lesion_dice", "bladder_dice"] if kind == "segmentation" else ["auc", "accuracy"]
    lines = ["| iteration | minutes | " + " | ".join(keys) + " |", "|---" * (2 + len(keys)) + "|"]
    for h in history:
        lines.append(f"| {h['iteration']} | {h['seconds'] / 60:.1f} | " + " | ".join(fmt(h.get(k)) for k in keys) + " |")
    return "\n".join(lines)


def card(records: dict, files: dict, evaluation: dict, work_dir: Path, trained_with: str) -> str:
    rows = [f"| {r['name']} | {r['target']} | {fmt(r['evaluation'])} | {fmt(r['stress'])} | {fmt(r['gap'])} |"
            for r in evaluation["targets"]]
    nema = evaluation.get("nema_nm1", {})
    size_rows = [f"| `{name}` | {info['bytes']:,} | `{info['sha256']}` |" for name, info in files.items()]
    training = [f"- **{kind}**: version {r.get('version')}, {r.get('iteration')} iterations, trained on {r.get('trained_on')} "
                f"studies, validated on {r.get('validated_on')}; published {r.get('published_at')}; "
                f"validation {json.dumps(r.get('metrics'))}" for kind, r in records.items()]
    return f"""# Model card: bonescan shipped weights

Written by `scripts/ship_models.py` on {time.strftime('%Y-%m-%d')}. Research use only.

## What they are
- `classification.safetensors`: MONAI ResNet34 (2 input channels: anterior, posterior flipped), stride-2 stem,
  on the study sum-pooled to 512 x 128; probability of bone metastases.
- `segmentation.safetensors`: MONAI FlexibleUNet with a ResNet10 encoder, whole study 1024 x 256; per view
  1 metastatic lesion, 2 bladder, 3 other bone.
- `decision.json`: the decision threshold chosen (Youden J) on the validation phantoms for exactly these two files
  (their sha256); `metastatic` when mean(classifier probability, lesion evidence) reaches it.
- Stored as float16 safetensors (no code runs at load), checked against the sha256 in `<kind>.json` at every load.

## Data
Synthetic phantoms only, from `bonescan/phantoms/` (this commit's generator): training pool `--seed 1000`
(`scripts/train.py` defaults: 600 studies + 30 superscans), validation 60 studies of other seeds; every
training example passes through domain randomisation (`bonescan.transforms.RandAppearanced`: tissue gains,
uptake field, gamma, blur, Poisson resampling, 8-bit exports), count thinning, view blanking, flips and small
affine changes. No patient data.

## Training
Command: `{trained_with}`

{chr(10).join(training)}

Learning curve, segmentation (validation on 60 phantoms):

{curve(work_dir, 'segmentation')}

Learning curve, classification:

{curve(work_dir, 'classification')}

## Evaluation
`python scripts/evaluate_models.py --model-dir apps/bonescan/model` (evaluation set: `make_phantoms.py --n 200
--seed 7`; stress set: `--n 200 --seed 8 --stress`, looks outside the training ranges; both never used for
training or choices). Threshold {fmt(evaluation['threshold'])} (calibrated: {evaluation['threshold_calibrated']}).

| measure | target | evaluation set | stress set | stress - evaluation |
|---|---|---|---|---|
{chr(10).join(rows)}

Stress margins (|gap| <= 0.10): {json.dumps(evaluation['stress_margins_met'])}. Key (mean AUC and lesion Dice over
both sets, must improve before these files are replaced): {evaluation['key']:.4f}. Median seconds per study
(file to JSON, 2 CPU threads, during the evaluation run): {evaluation['seconds_per_study_median']:.3f}.
NEMA NM1 (real, anterior only, no metastases): {json.dumps(nema)}.

## Intended use and limitations
- Research and annotation support (pre-labelling in MONAI Label, OHIF, 3D Slicer). Not a medical device; not
  validated on patients; never the sole basis of a diagnosis.
- Trained on synthetic phantoms only: real scans differ in anatomy, lesion appearance, benign findings and camera
  properties. Expect lower accuracy on real scans than on the figures above; physicians' corrections retrain the
  networks (`model/local/`, which takes precedence; delete it to return to these files).
- The stress set tests robustness to appearance only; anatomy and lesion shapes remain those of our generator.

## Files
| file | bytes | sha256 |
|---|---|---|
{chr(10).join(size_rows)}
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=Path, required=True, help="model folder of the candidate weights")
    parser.add_argument("--evaluation", type=Path, required=True, help="summary.json of scripts/evaluate_models.py")
    parser.add_argument("--work-dir", type=Path, required=True, help="scripts/train.py --work-dir (learning curves)")
    parser.add_argument("--trained-with", required=True, help="the training command(s), for the card")
    parser.add_argument("--to", type=Path, default=SHIPPED)
    parser.add_argument("--force", action="store_true", help="ship even when the key did not improve")
    args = parser.parse_args(argv)

    evaluation = json.loads(args.evaluation.read_text())
    if Path(evaluation["model_dir"]).resolve() != args.source.resolve():
        print(f"ship_models: {args.evaluation} evaluated {evaluation['model_dir']}, not {args.source}", file=sys.stderr)
        return 2
    records, files, total = {}, {}, 0
    for kind in KINDS:
        path = weights_file(args.source, kind)
        record = read_version(path)
        problem = check_file(path, (record or {}).get("sha256")) if record else f"{path}: no version record"
        if problem:
            print(f"ship_models: {problem}", file=sys.stderr)
            return 2
        records[kind] = record
        files[path.name] = {"bytes": record["bytes"], "sha256": record["sha256"]}
        total += record["bytes"]
    if total > LIMIT_BYTES:
        print(f"ship_models: the weights take {total / 1e6:.1f} MB, above the {LIMIT_BYTES / 1e6:.0f} MB the repository allows",
              file=sys.stderr)
        return 2
    if not (args.source / "decision.json").exists():
        print("ship_models: no decision.json beside the weights (calibrate first: python -m bonescan.calibration)",
              file=sys.stderr)
        return 2
    shipped = args.to / EVALUATION_FILE
    if shipped.exists() and not args.force:
        before = json.loads(shipped.read_text())["key"]
        if evaluation["key"] <= before:
            print(f"ship_models: key {evaluation['key']:.4f} is not above the shipped {before:.4f}; nothing replaced",
                  file=sys.stderr)
            return 1
    args.to.mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        for suffix in (".safetensors", ".json"):
            shutil.copy2(args.source / f"{kind}{suffix}", args.to / f"{kind}{suffix}")
    shutil.copy2(args.source / "decision.json", args.to / "decision.json")
    (args.to / EVALUATION_FILE).write_text(json.dumps({**evaluation, "model_dir": "apps/bonescan/model"}, indent=2))
    (args.to / "MODEL_CARD.md").write_text(card(records, files, evaluation, args.work_dir, args.trained_with))
    print(f"shipped {', '.join(files)} ({total / 1e6:.1f} MB) and MODEL_CARD.md to {args.to}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
