#!/usr/bin/env python
"""Send every DICOM file under a folder to a DICOMweb study store (STOW-RS), e.g. Orthanc.

    python scripts/upload_studies.py DIR [--url http://127.0.0.1:8042/dicom-web] [--batch 10]
    python scripts/upload_studies.py datastore --labels datastore/labels/final   # studies + their labels

Sends *.dcm files and any other file with the DICOM preamble, recursively, in batches. A file
that is not DICOM or that the server refuses is reported with its name and the reason, and the
run goes on; the exit code is 1 when any file failed. Start Orthanc first: scripts/orthanc.sh start.
With --labels, each ``<study>.nii.gz`` label map there (MONAI Label's layout) is sent too, as a
DICOM SEG (physician labels, bonescan.io.dicom_seg) on the NM file ``<study>.dcm`` in DIR.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bonescan.pacs.upload import (  # noqa: E402
    DEFAULT_URL,
    labels_as_segs,
    upload_files,
    upload_folder,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder (or single file) to send")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"DICOMweb root (default {DEFAULT_URL})")
    parser.add_argument("--batch", type=int, default=10, help="files per STOW-RS request (default 10)")
    parser.add_argument("--labels", type=Path, help="folder of <study>.nii.gz label maps to send as DICOM SEG")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if not args.folder.exists():
        print(f"{args.folder}: no such file or folder", file=sys.stderr)
        return 2

    from tqdm import tqdm

    def failed(result):
        tqdm.write(f"FAILED {result.path}: {result.reason}", file=sys.stderr)

    options = dict(batch_size=max(1, args.batch), progress=not args.no_progress, on_failure=failed)
    report = upload_folder(args.folder, args.url, **options)
    print(report.summary())
    ok = report.ok
    if args.labels:
        with tempfile.TemporaryDirectory(prefix="bonescan-segs-") as folder:
            segs, problems = labels_as_segs(args.folder, args.labels, Path(folder))
            for problem in problems:
                print(f"FAILED {problem}", file=sys.stderr)
            labels = upload_files(segs, args.url, **options)
            print("labels: " + labels.summary())
            ok = ok and labels.ok and not problems
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
