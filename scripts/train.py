#!/usr/bin/env python
"""Train the segmentation and classification networks on phantoms (and labelled studies).

    python scripts/train.py --minutes 240                      # both models, long run
    python scripts/train.py --model segmentation --minutes 60  # one model
    python scripts/train.py --minutes 600 --n-train 2000       # bigger phantom pool

Resumable: run the same command again and it continues from the last checkpoint in
--work-dir (delete that folder to start over); without a checkpoint it starts from the weights
served from --start-from (the shipped ones, or the local layer's). Weights are published to
--model-dir (default: the git-ignored local layer) only when validation did not get worse; the
server picks them up at its next inference. Validation
curves: <work-dir>/<model>_curve.png and <model>_history.json. Uses a GPU when there is one.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

from bonescan.training.loop import RunConfig, train
from bonescan.training.pool import build_phantom_pool, datastore_examples, load_examples
from bonescan.weights import served_weights

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["segmentation", "classification", "both"], default="both")
    parser.add_argument("--minutes", type=float, default=60.0, help="total time budget")
    parser.add_argument("--segmentation-share", type=float, default=0.65, help="share of the time for segmentation")
    parser.add_argument("--max-iterations", type=int, default=None)
    parser.add_argument("--model-dir", type=Path, default=REPO / "apps" / "bonescan" / "model" / "local",
                        help="where weights are published (default: the server's git-ignored local layer, which "
                             "serves before the shipped weights; ship with scripts/ship_models.py)")
    parser.add_argument("--start-from", type=Path, default=REPO / "apps" / "bonescan" / "model",
                        help="model folder whose served weights a new run starts from (default: the server's)")
    parser.add_argument("--work-dir", type=Path, default=REPO / "runs" / "train")
    parser.add_argument("--pool-dir", type=Path, default=REPO / "var" / "phantom_pool")
    parser.add_argument("--n-train", type=int, default=600, help="phantom studies for training")
    parser.add_argument("--n-superscan", type=int, default=30,
                        help="extra superscan studies for training: about 2 %% of scans, yet they carry the largest BSTBI")
    parser.add_argument("--n-val", type=int, default=60, help="phantom studies for validation (other seeds)")
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--datastore", type=Path, default=None, help="also train on the final labels of this datastore")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--val-every", type=int, default=100)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 autocast (default: only where the CPU or GPU runs it natively)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all cores)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)

    train_paths = build_phantom_pool(args.pool_dir / "train", args.n_train, args.seed)
    if args.n_superscan:
        train_paths += build_phantom_pool(args.pool_dir / "superscan", args.n_superscan, args.seed + 900_000, superscan=True)
    val_paths = build_phantom_pool(args.pool_dir / "val", args.n_val, args.seed + 500_000)
    train_examples = load_examples(train_paths)
    val_examples = load_examples(val_paths)
    if args.datastore:
        from monailabel.datastore.local import LocalDatastore

        from bonescan.monailabel_workarounds import DATASTORE_EXTENSIONS

        train_examples += datastore_examples(LocalDatastore(str(args.datastore), extensions=DATASTORE_EXTENSIONS, auto_reload=False))
    print(f"training on {len(train_examples)} studies, validating on {len(val_examples)}")

    kinds = ["segmentation", "classification"] if args.model == "both" else [args.model]
    shares = {"segmentation": args.segmentation_share, "classification": 1 - args.segmentation_share}
    summaries = []
    for kind in kinds:
        minutes = args.minutes * (shares[kind] if len(kinds) == 2 else 1.0)
        batch = args.batch_size or (4 if kind == "segmentation" else 16)
        config = RunConfig(kind=kind, model_dir=args.model_dir, work_dir=args.work_dir, minutes=minutes,
                           max_iterations=args.max_iterations, batch_size=batch, val_every=args.val_every,
                           patience=args.patience, bf16=args.bf16, seed=args.seed, start_dir=args.start_from)
        # Case-level answers without drawing teach the classifier only.
        examples = [e for e in train_examples if kind != "segmentation" or e.get("has_label_map", True)]
        summary = train(config, examples, val_examples)
        summaries.append(summary)
        print(json.dumps(summary))
    if all(served_weights(args.model_dir, kind) for kind in ("segmentation", "classification")):
        from bonescan.calibration import calibrate, studies_from_pool

        decision = calibrate(args.model_dir, studies_from_pool(val_paths))
        if decision:
            print(f"decision threshold {decision['threshold']:.3f} (Youden {decision['youden']:.3f} on {decision['n']} validation studies)")
    print("done: " + "; ".join(f"{s['kind']} {s['iterations']} it, best {s['best']:.3f} ({s['stopped']})" for s in summaries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
