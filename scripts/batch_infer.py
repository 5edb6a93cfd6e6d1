#!/usr/bin/env python
"""Analyse every bone scan in a folder: diagnosis, lesion + bladder outlines and BSTBI.

    python scripts/batch_infer.py --studies DIR --output DIR [--model-dir D] [--[no-]bf16] [--recursive] [--threads N]

Reads DICOM NM (.dcm and extension-less DICOM), NIfTI (.nii/.nii.gz) and PNG/JPEG
anterior/posterior pairs (x_ant.png + x_post.png = one study "x") or side-by-side images; other
files (truth.csv, preview.png, ...) are skipped. For each study it writes OUTPUT/<stem>.json (the
analysis result, plus "seconds" from file to JSON and "source_file") and OUTPUT/<stem>_labels.npz
(key "labels", uint8, frames x rows x columns, pixel for pixel on the file's own frames).
Files that cannot be read are listed in OUTPUT/errors.json ([{file, error}]) and the run goes on.

Exit status: 0 all studies analysed, 1 finished but some files failed (see errors.json),
2 nothing could be done (no trained weights, no such folder).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# torch's OpenMP threads spin-wait by default; on a CPU shared with other work (a training run,
# the server) that makes inference 5-25x slower (scripts/benchmark.py --omp-wait-policy). Must be
# set before torch is imported; an explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

DEFAULT_MODEL_DIR = REPO / "apps" / "bonescan" / "model"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("--studies", type=Path, required=True, help="folder of study files")
    parser.add_argument("--output", type=Path, required=True, help="folder for <stem>.json, <stem>_labels.npz, errors.json")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR,
                        help="model folder (default: %(default)s); its local/ layer of retrained weights takes precedence")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 autocast (default: only where the CPU runs it natively; emulated bf16 is 6x slower)")
    parser.add_argument("--recursive", action="store_true", help="also read sub-folders (outputs mirror the folder tree)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def fail(message: str) -> int:
    print(f"batch_infer: {message}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.studies.is_dir():
        return fail(f"studies folder {args.studies} not found")
    if args.output.resolve() == args.studies.resolve():
        return fail("--output must not be the --studies folder (result JSON files would overwrite NIfTI sidecars)")

    import torch

    from bonescan.analysis import Analyser
    from bonescan.batch import find_studies, run_batch
    from bonescan.errors import ModelNotTrainedError

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        analyser = Analyser.from_model_dir(args.model_dir, bf16=args.bf16)
    except ModelNotTrainedError as exc:
        return fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - a damaged or incompatible weight file: one clear line
        return fail(f"cannot load the models from {args.model_dir}: {type(exc).__name__}: {exc}")

    inventory = find_studies(args.studies, recursive=args.recursive, exclude=[args.output])
    if not inventory.studies and not inventory.problems:
        print(f"batch_infer: no studies found in {args.studies} ({len(inventory.ignored)} other files ignored)",
              file=sys.stderr)
    summary = run_batch(analyser, inventory, args.output, directory=args.studies, progress=not args.no_progress)
    print(summary.line())
    if summary.errors:
        print(f"errors: see {args.output / 'errors.json'}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
