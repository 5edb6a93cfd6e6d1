#!/usr/bin/env python
"""Fill the demo datastore with phantom studies, half of them with final labels.

    python scripts/make_datastore.py --studies datastore [--n 40] [--labelled 20] [--seed 2024]

Does nothing when the folder already holds studies (pass --force to add a fresh set anyway).
Images are NM multi-frame DICOM files in MONAI Label's local layout; the labelled half get a
final segmentation label (1 lesion, 2 bladder, 3 other bone; NIfTI in the layout MONAI Label
makes from the DICOM) and the case-level answer in the label info. The ground truth of every
study is kept in ``<studies>/.truth/`` for simulations and evaluations.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bonescan.io import read_study, write_labels_nifti
from bonescan.io.dicom_writer import write_whole_body_nm
from bonescan.labels import compose_label_map
from bonescan.phantoms.export import file_options
from bonescan.phantoms.generator import make_phantom

IMAGE_PATTERNS = ("*.dcm", "*.nii", "*.nii.gz", "*.png", "*.jpg", "*.jpeg")


def has_studies(folder: Path) -> bool:
    return any(any(folder.glob(pattern)) for pattern in IMAGE_PATTERNS)


def build(studies: Path, n: int, labelled: int, seed: int) -> dict:
    from monailabel.datastore.local import LocalDatastore

    from bonescan.monailabel_workarounds import DATASTORE_EXTENSIONS

    studies.mkdir(parents=True, exist_ok=True)
    truth_dir = studies / ".truth"
    truth_dir.mkdir(exist_ok=True)
    written = []
    for index in tqdm(range(n), desc="phantom studies", unit="study"):
        # Alternate metastatic / normal so both labelled and unlabelled halves hold both kinds.
        phantom = make_phantom(seed + index, metastatic=bool(index % 2))
        info = phantom.info
        study_id = f"bonescan_{seed + index:05d}"
        path = write_whole_body_nm(
            studies / f"{study_id}.dcm",
            phantom.counts,
            pixel_spacing=tuple(info["pixel_spacing"]),
            patient_id=study_id,
            patient_name=f"Phantom^{seed + index}",
            sex=info["sex"],
            age_years=info["age"],
            description="bonescan phantom",
            **file_options(seed + index),  # some posterior-first files, some without positions
        )
        np.savez_compressed(
            truth_dir / f"{study_id}.npz",
            lesion=phantom.lesion,
            bladder=phantom.bladder,
            skeleton=phantom.skeleton,
            benign=phantom.benign,
            region=phantom.region,
        )
        written.append((study_id, path, phantom))

    datastore = LocalDatastore(str(studies), extensions=DATASTORE_EXTENSIONS, auto_reload=False)
    with tempfile.TemporaryDirectory() as scratch:
        for study_id, path, phantom in tqdm(written[:labelled], desc="final labels", unit="label"):
            meta = read_study(path).meta
            label_file = Path(scratch) / f"{study_id}.nii.gz"
            write_labels_nifti(label_file, compose_label_map(phantom.lesion, phantom.bladder, phantom.skeleton), meta)
            datastore.save_label(
                study_id,
                str(label_file),
                "final",
                {
                    "metastatic": bool(phantom.info["metastatic"]),
                    "annotator": "phantom ground truth",
                    "lesion_count": int(phantom.info["lesion_count"]),
                },
            )
    return {"studies": n, "labelled": labelled, "folder": str(studies)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=Path, default=Path("datastore"), help="datastore folder")
    parser.add_argument("--n", type=int, default=40, help="number of studies")
    parser.add_argument("--labelled", type=int, default=20, help="how many of them get final labels")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the first study")
    parser.add_argument("--force", action="store_true", help="add studies even if the folder has some")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.labelled > args.n:
        parser.error("--labelled cannot exceed --n")
    if has_studies(args.studies) and not args.force:
        print(f"{args.studies}: already holds studies; leaving it as it is (use --force to add more)")
        return 0
    summary = build(args.studies, args.n, args.labelled, args.seed)
    print(f"Demo datastore ready: {summary['studies']} studies, {summary['labelled']} with final labels in {summary['folder']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
