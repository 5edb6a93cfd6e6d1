#!/usr/bin/env python
"""Generate a set of synthetic whole-body bone-scan studies with ground truth.

    python scripts/make_phantoms.py --n 100 --seed 0 --output DIR [--workers 2] [--metastatic|--normal] [--stress]

Writes DIR/<study_id>.dcm (NM multi-frame DICOM), DIR/truth/<study_id>.npz (lesion, bladder,
skeleton, benign, confounder, region, counts_canonical), DIR/truth.csv (one row per study) and
DIR/preview.png / preview_lesions.png. The set depends only on --n and --seed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bonescan.phantoms.export import write_phantom_set  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="number of studies")
    parser.add_argument("--seed", type=int, default=0, help="seed of the set")
    parser.add_argument("--output", type=Path, required=True, help="output folder")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--no-preview", action="store_true", help="skip preview images")
    parser.add_argument("--stress", action="store_true",
                        help="stress set: each study's look pushed outside the training ranges (bonescan/phantoms/stress.py); "
                             "never train or choose on it")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--metastatic", action="store_true", help="every study metastatic")
    group.add_argument("--normal", action="store_true", help="no study metastatic")
    args = parser.parse_args(argv)
    overrides = {"stress": True} if args.stress else {}
    if args.metastatic:
        overrides["metastatic"] = True
    if args.normal:
        overrides["metastatic"] = False
    start = time.time()
    rows = write_phantom_set(args.output, n=args.n, seed=args.seed, workers=args.workers, preview=not args.no_preview, **overrides)
    elapsed = time.time() - start
    n_met = sum(int(r["metastatic"]) for r in rows)
    n_super = sum(int(r["superscan"]) for r in rows)
    lesions = sum(int(r["lesion_count"]) for r in rows)
    print(f"{len(rows)} studies in {elapsed:.1f} s ({elapsed / max(len(rows), 1):.2f} s/study) -> {args.output}: "
          f"{n_met} metastatic ({n_super} superscan, {lesions} lesions), {len(rows) - n_met} without metastases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
