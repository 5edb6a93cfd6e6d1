"""Read a DICOM NM bone scan (2-frame whole body or single view) into the canonical Study.

Views come from the view codes of the detector items (through DetectorVector), never from frame
order unless the file has no codes, because vendors differ in which detector they store first.
pydicom reads the file (SimpleITK/GDCM refuse files without ImagePositionPatient).
"""

from __future__ import annotations

import datetime
import re
from typing import List, Optional, Tuple

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from bonescan.errors import BoneScanInputError
from bonescan.io.canonical import build_study
from bonescan.study import Study

VIEW_BY_CODE = {"399321004": "anterior", "399001007": "posterior"}
_AGE_UNITS = {"Y": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}


def _text(value) -> str:
    if isinstance(value, MultiValue):
        return "".join(str(v) for v in value)
    return "" if value is None else str(value)


def _view_from_text(text: str) -> Optional[str]:
    """'anterior' or 'posterior' when the text names exactly one of them (ANT, POST, ...)."""
    ant = re.search(r"\bANT(ERIOR)?\b", text, re.I) is not None
    post = re.search(r"\bPOST(ERIOR)?\b", text, re.I) is not None
    if ant != post:
        return "anterior" if ant else "posterior"
    return None


def _view_from_codes(item) -> Optional[str]:
    for code in item.get("ViewCodeSequence", None) or []:
        view = VIEW_BY_CODE.get(str(code.get("CodeValue", "")))
        return view or _view_from_text(_text(code.get("CodeMeaning", "")))
    return None


def _frame_views(ds, n_frames: int) -> List[Optional[str]]:
    """View of each frame from the detector items its DetectorVector entry points at."""
    items = list(ds.get("DetectorInformationSequence", None) or [])
    detector_views = [_view_from_codes(item) for item in items]
    vector = ds.get("DetectorVector", None)
    vector = [int(v) for v in vector] if isinstance(vector, (list, tuple)) else ([int(vector)] if vector else [])
    if len(vector) != n_frames:
        vector = list(range(1, n_frames + 1))
    views = [detector_views[d - 1] if 0 < d <= len(detector_views) else None for d in vector]
    if n_frames == 1 and views[0] is None:
        views[0] = _view_from_codes(ds)
    return views


def _age_years(ds) -> Optional[float]:
    match = re.fullmatch(r"(\d{1,3})([YMWD])", _text(ds.get("PatientAge", "")).strip().upper())
    if match:
        return round(int(match.group(1)) * _AGE_UNITS[match.group(2)], 3)
    born = _text(ds.get("PatientBirthDate", "")).strip()
    seen = next((_text(ds.get(k, "")).strip() for k in ("StudyDate", "AcquisitionDate", "SeriesDate")
                 if _text(ds.get(k, "")).strip()), "")
    try:
        days = (datetime.datetime.strptime(seen[:8], "%Y%m%d") - datetime.datetime.strptime(born[:8], "%Y%m%d")).days
    except ValueError:
        return None
    return round(days / 365.25, 3) if days >= 0 else None


def _spacing(ds) -> Optional[Tuple[float, float]]:
    try:
        row, col = (float(v) for v in ds.get("PixelSpacing", None) or ())
    except (TypeError, ValueError):
        return None
    return (row, col) if row > 0 and col > 0 else None


def _nifti_affine(ds, spacing: Tuple[float, float]) -> List[List[float]]:
    """The RAS affine SimpleITK/GDCM gives this file when MONAI Label converts it to NIfTI.

    GDCM takes position and orientation from the first detector item (or the top level), the
    spacing as (column, row, 1), and NIfTI stores LPS flipped to RAS.
    """
    items = list(ds.get("DetectorInformationSequence", None) or [])
    source = items[0] if items and items[0].get("ImageOrientationPatient", None) else ds
    try:
        iop = [float(v) for v in source.get("ImageOrientationPatient", None)]
        ipp = [float(v) for v in source.get("ImagePositionPatient", None)]
        assert len(iop) == 6 and len(ipp) == 3
    except (TypeError, ValueError, AssertionError):
        iop, ipp = [1.0, 0, 0, 0, 1.0, 0], [0.0, 0.0, 0.0]
    x, y = np.array(iop[:3]), np.array(iop[3:])
    lps = np.eye(4)
    lps[:3, :3] = np.column_stack([x * spacing[1], y * spacing[0], np.cross(x, y)])
    lps[:3, 3] = ipp
    return (np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps).tolist()


def _read_dataset(path):
    try:
        return pydicom.dcmread(str(path))
    except InvalidDicomError:
        raise BoneScanInputError(path, "not a DICOM file", "give a DICOM NM file, a NIfTI file or a PNG/JPEG pair") from None
    except Exception as exc:  # pydicom raises many types for damaged files
        raise BoneScanInputError(path, f"DICOM file cannot be read ({type(exc).__name__}: {exc})",
                                 "the file may be truncated; copy or export it again") from None


def _pixels(path, ds) -> np.ndarray:
    if "PixelData" not in ds:
        raise BoneScanInputError(path, "the DICOM file has no pixel data", "send the image instance, not a report or a structure set")
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise BoneScanInputError(path, "the DICOM image is colour (SamplesPerPixel > 1), not counts", "export the original NM counts")
    try:
        array = ds.pixel_array
    except Exception as exc:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", syntax) or "unknown transfer syntax"
        raise BoneScanInputError(path, f"pixel data cannot be decoded ({name}: {type(exc).__name__}: {exc})",
                                 "the file may be truncated or its compression unsupported; install python-gdcm or export uncompressed") from None
    return array.reshape((-1,) + array.shape[-2:])


def read_dicom(path) -> Study:
    """Read a DICOM NM file (multi-frame whole body or single view) as a canonical Study."""
    ds = _read_dataset(path)
    modality = _text(ds.get("Modality", "")).strip().upper()
    if modality != "NM":
        raise BoneScanInputError(path, f"modality is {modality or 'missing'}, not NM", "a bone scan is a nuclear medicine (NM) image")
    frames = _pixels(path, ds).astype(np.float64)
    warnings: List[str] = []
    if frames.min() < 0:
        warnings.append("negative pixel values set to 0")
        frames = np.clip(frames, 0, None)
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        frames = frames * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0)

    views = _frame_views(ds, len(frames))
    known = [v for v in views if v]
    if len(known) != len(set(known)):
        twice = next(v for v in known if known.count(v) > 1)
        raise BoneScanInputError(path, f"two frames both claim the {twice} view",
                                 "check DetectorVector and the ViewCodeSequence of the detector items")
    if len(frames) > 2:
        raise BoneScanInputError(path, f"{len(frames)} frames" + ("" if known else " without view codes"),
                                 "expected one whole-body instance with an anterior and a posterior frame")
    if len(frames) == 1:
        view_source = "single_view"
        if views[0] is None:
            text = " ".join(_text(ds.get(k, "")) for k in ("SeriesDescription", "ImageComments", "ImageID"))
            views[0] = "posterior" if _view_from_text(text) == "posterior" else "anterior"
            warnings.append(f"single frame without a view code taken as {views[0]}")
    elif not known:
        view_source, views = "frame_order", ["anterior", "posterior"]
        warnings.append("no view codes; frame 1 taken as anterior and frame 2 as posterior")
    else:
        view_source = "view_code"
        if len(known) == 1:
            other = "posterior" if known[0] == "anterior" else "anterior"
            views = [v or other for v in views]
            warnings.append(f"one frame has no view code; taken as {other}")

    spacing = _spacing(ds)  # None (PixelSpacing missing or empty): build_study assumes 2.4 mm
    sex = _text(ds.get("PatientSex", "")).strip().upper()
    return build_study(
        path, frames, views, spacing, view_source=view_source, warnings=warnings,
        age_years=_age_years(ds), sex=sex if sex in ("M", "F", "O") else None,
        patient_id=_text(ds.get("PatientID", "")), study_instance_uid=_text(ds.get("StudyInstanceUID", "")),
        series_instance_uid=_text(ds.get("SeriesInstanceUID", "")), sop_instance_uid=_text(ds.get("SOPInstanceUID", "")),
        nifti_affine=_nifti_affine(ds, spacing or (2.4, 2.4)),
    )
