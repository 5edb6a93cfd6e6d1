#!/usr/bin/env python
"""Train starter models without a server, e.g. before a batch job on a fresh install.

    python scripts/bootstrap_models.py --minutes 20 [--model-dir apps/bonescan/model/local] [--datastore datastore]

The same recipe as the server's starter training jobs (a short run on the labelled demo studies
plus freshly generated phantoms, 65 % of the time for segmentation, 35 % for classification),
with a progress bar. For good models run scripts/train.py for hours instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import train  # noqa: E402  (the long-run script; bootstrap is the same recipe with starter defaults)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--model-dir", type=Path, default=REPO / "apps" / "bonescan" / "model" / "local",
                        help="where weights are published (default: the git-ignored local layer; never the shipped files)")
    parser.add_argument("--datastore", type=Path, default=REPO / "datastore")
    parser.add_argument("--work-dir", type=Path, default=REPO / "runs" / "bootstrap")
    parser.add_argument("--phantoms", type=int, default=160)
    args = parser.parse_args(argv)
    forwarded = [
        "--minutes", str(args.minutes), "--model-dir", str(args.model_dir), "--work-dir", str(args.work_dir),
        "--n-train", str(args.phantoms), "--n-val", "24", "--val-every", "50",
    ]
    if args.datastore and args.datastore.exists() and any(args.datastore.glob("labels/final/*.nii*")):
        forwarded += ["--datastore", str(args.datastore)]
    before = published(args.model_dir)
    code = train.main(forwarded)
    if code == 0 and published(args.model_dir) == before:
        print(f"bootstrap: no weights were saved to {args.model_dir} (validation never improved or no time to "
              "validate); give more --minutes", file=sys.stderr)
        return 1
    return code


def published(model_dir: Path) -> dict:
    """Modification time of each weights file in ``model_dir``: a run that saved nothing leaves them as they were."""
    return {p.name: p.stat().st_mtime_ns for p in Path(model_dir).glob("*.safetensors")} if Path(model_dir).exists() else {}


if __name__ == "__main__":
    sys.exit(main())
