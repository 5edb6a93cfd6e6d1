"""Batch analysis of a folder of bone scans: what ``scripts/batch_infer.py`` and the benchmark run.

A folder is turned into a list of studies (``find_studies``) before anything is analysed:

- DICOM: ``.dcm``/``.dicom``/``.ima`` files, and any other file that starts with the DICOM
  preamble (extension-less or UID-named files from a PACS, e.g. ``1.2.840.113619.2.55.3``);
- NIfTI: ``.nii`` / ``.nii.gz``;
- PNG/JPEG, by the reader's own rules (``bonescan.io.image_reader``): files whose names carry a
  view tag (``case_ant.png`` + ``case_post.png``, ``_anterior``/``-P``/... any case) are grouped into
  one study per pair, named after the common base (``case``); an untagged image twice as high as
  wide is one side-by-side study; any other image (``preview.png``, ``preview_lesions.png`` of a
  phantom set) is not a study and is only counted as ignored. A tagged image without its partner
  is reported as an error (its name says it is half of a study).
- everything else (``truth.csv``, JSON sidecars, ``truth/*.npz``, hidden files) is ignored.

Each study writes ``<stem>.json`` (the ``Analyser`` result plus ``seconds`` and ``source_file``) and
``<stem>_labels.npz`` atomically; a file that cannot be read or analysed goes to ``errors.json``
({file, error}) and the run goes on. ``seconds`` is the wall time from file to JSON: read_study +
analyse + JSON serialisation (the label file is written afterwards and is not included).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from bonescan.errors import BoneScanInputError
from bonescan.io.atomic import atomic_path
from bonescan.io.image_reader import _TAGGED, IMAGE_SUFFIXES, _view_of_tag
from bonescan.io.labels import write_labels_npz
from bonescan.io.reader import read_study

DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
NIFTI_SUFFIXES = (".nii.gz", ".nii")
ERRORS_FILE = "errors.json"
LABELS_SUFFIX = "_labels.npz"


@dataclass
class StudyFile:
    """One study to analyse: ``path`` is what read_study gets, ``files`` every file it is made of."""

    stem: str  # output name: <stem>.json and <stem>_labels.npz (relative folder included with --recursive)
    path: Path
    files: List[Path]
    kind: str  # dicom | nifti | image_pair | side_by_side


@dataclass
class Inventory:
    studies: List[StudyFile] = field(default_factory=list)
    problems: List[Dict[str, str]] = field(default_factory=list)  # files that claim to be studies but cannot be one
    ignored: List[Path] = field(default_factory=list)  # files that are not studies (csv, preview.png, ...)


def _has_dicom_preamble(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def _strip_suffix(name: str) -> Tuple[str, str]:
    """(stem, known suffix) of a study file name; unknown suffixes stay in the stem (UID names)."""
    lower = name.lower()
    for suffix in NIFTI_SUFFIXES + DICOM_SUFFIXES + IMAGE_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], suffix
    return name, ""


def _image_size(path: Path) -> Optional[Tuple[int, int]]:
    """(width, height) from the image header, None if it is not a readable image."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except Exception:  # noqa: BLE001 - PIL raises many types for non-images
        return None


def _walk(directory: Path, recursive: bool, exclude: Iterable[Path]) -> List[Path]:
    excluded = {Path(p).resolve() for p in exclude}
    files: List[Path] = []
    if recursive:
        for root, dirs, names in os.walk(directory):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (Path(root) / d).resolve() not in excluded)
            files += [Path(root) / n for n in sorted(names)]
    else:
        files = sorted(p for p in directory.iterdir() if p.is_file())
    return [p for p in files if not p.name.startswith(".") and p.is_file()]


def find_studies(directory, recursive: bool = False, exclude: Iterable[Path] = ()) -> Inventory:
    """Every study in ``directory`` (see the module docstring for the rules), sorted by output name."""
    directory = Path(directory)
    inventory = Inventory()
    found: List[Tuple[str, str, StudyFile]] = []  # (relative base, suffix, study)
    tagged: Dict[Tuple[Path, str, str], Dict[str, List[Path]]] = defaultdict(lambda: defaultdict(list))
    for path in _walk(directory, recursive, exclude):
        relative = path.relative_to(directory)
        base, suffix = _strip_suffix(path.name)
        rel_base = str(relative.with_name(base))
        if suffix in NIFTI_SUFFIXES:
            found.append((rel_base, suffix, StudyFile(rel_base, path, [path], "nifti")))
        elif suffix in IMAGE_SUFFIXES:
            match = _TAGGED.match(path.stem)
            if match:
                key = (path.parent, match["base"], match["sep"])
                tagged[key][_view_of_tag(match["tag"])].append(path)
                continue
            size = _image_size(path)
            if size is not None and size[1] == 2 * size[0]:
                found.append((rel_base, suffix, StudyFile(rel_base, path, [path], "side_by_side")))
            else:
                inventory.ignored.append(path)
        elif suffix in DICOM_SUFFIXES or _has_dicom_preamble(path):
            found.append((rel_base, suffix, StudyFile(rel_base, path, [path], "dicom")))
        else:
            inventory.ignored.append(path)
    for (parent, base, _sep), views in sorted(tagged.items()):
        rel_base = str((parent / base).relative_to(directory))
        anterior, posterior = sorted(views.get("anterior", [])), sorted(views.get("posterior", []))
        if anterior and posterior:
            # the reader pairs a file with its partner itself (preferring the same suffix)
            first = anterior[0]
            partner = next((p for p in posterior if p.suffix.lower() == first.suffix.lower()), posterior[0])
            suffix = _strip_suffix(first.name)[1]
            found.append((rel_base, suffix, StudyFile(rel_base, first, [first, partner], "image_pair")))
            for extra in (anterior[1:] + [p for p in posterior if p != partner]):
                inventory.problems.append({"file": str(extra.relative_to(directory)),
                                           "error": f"{extra}: more than one file for the same view of pair '{base}' "
                                                    f"(analysed {first.name} + {partner.name}; rename or remove the others)"})
        else:
            for lonely in anterior + posterior:
                try:  # the reader's own message ("the posterior image of this pair is missing ...")
                    read_study(lonely)
                    message = f"{lonely}: the other view of this pair is missing"
                except BoneScanInputError as exc:
                    message = str(exc)
                inventory.problems.append({"file": str(lonely.relative_to(directory)), "error": message})
    # unique output names: a stem shared by two files (x.dcm and x.nii.gz) keeps the file's suffix
    counts: Dict[str, int] = defaultdict(int)
    for rel_base, _, _ in found:
        counts[rel_base] += 1
    for rel_base, suffix, study in found:
        if counts[rel_base] > 1:
            study.stem = rel_base + suffix.replace(".", "_")
    inventory.studies = sorted((s for _, _, s in found), key=lambda s: s.stem)
    inventory.problems.sort(key=lambda p: p["file"])
    return inventory


def _json_bytes(document: dict) -> str:
    return json.dumps(document, indent=2, allow_nan=False)


def write_json(path: Path, document) -> Path:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(document, indent=2) + "\n")
    return path


def analyse_file(analyser, study_file: StudyFile):
    """(study, canonical labels, result JSON dict with seconds and source_file, JSON text)."""
    start = time.perf_counter()
    study = read_study(study_file.path)
    labels, result = analyser.analyse(study)
    result["source_file"] = str(study_file.path)
    if len(study_file.files) > 1:
        result["source_files"] = [str(p) for p in study_file.files]
    result["seconds"] = 0.0
    text = _json_bytes(result)  # serialised once for timing, once more below with the real time
    result["seconds"] = round(time.perf_counter() - start, 4)
    return study, labels, result, text


@dataclass
class BatchSummary:
    analysed: int = 0
    errors: List[Dict[str, str]] = field(default_factory=list)
    metastatic: int = 0
    seconds: List[float] = field(default_factory=list)
    ignored: int = 0

    @property
    def median_seconds(self) -> Optional[float]:
        return statistics.median(self.seconds) if self.seconds else None

    def line(self) -> str:
        median = f"{self.median_seconds:.3f} s" if self.seconds else "n/a"
        text = (f"{self.analysed} studies analysed, {len(self.errors)} errors, {self.metastatic} metastatic, "
                f"median {median} per study (file to JSON)")
        if self.ignored:
            text += f"; {self.ignored} non-study files ignored (csv, preview images, ...)"
        return text


def run_batch(analyser, inventory: Inventory, output, directory=None, progress: bool = True) -> BatchSummary:
    """Analyse every study of ``inventory`` into ``output``; errors.json is always (re)written."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    directory = Path(directory) if directory is not None else None
    summary = BatchSummary(errors=list(inventory.problems), ignored=len(inventory.ignored))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(inventory.studies), desc="bone scans", unit="study")
    for study_file in inventory.studies:
        name = str(study_file.path.relative_to(directory)) if directory is not None else study_file.path.name
        try:
            study, labels, result, _ = analyse_file(analyser, study_file)
            target = output / study_file.stem
            target.parent.mkdir(parents=True, exist_ok=True)
            write_labels_npz(target.with_name(target.name + LABELS_SUFFIX), labels, study.meta)
            with atomic_path(target.with_name(target.name + ".json")) as tmp:
                Path(tmp).write_text(_json_bytes(result) + "\n")
        except BoneScanInputError as exc:
            summary.errors.append({"file": name, "error": str(exc)})
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - one odd study must not stop a night's batch
            summary.errors.append({"file": name, "error": f"{study_file.path}: analysis failed "
                                                          f"({type(exc).__name__}: {exc})"})
        else:
            summary.analysed += 1
            summary.metastatic += bool(result.get("metastatic"))
            summary.seconds.append(result["seconds"])
        if bar:
            bar.update()
            if summary.errors:
                bar.set_postfix(errors=len(summary.errors))
    if bar:
        bar.close()
    summary.errors.sort(key=lambda e: e["file"])
    write_json(output / ERRORS_FILE, summary.errors)
    return summary
