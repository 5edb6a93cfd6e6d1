"""Read a DICOM NM bone scan (2-frame whole body or single view) into the canonical Study.

Which frame shows which view is decided in ``bonescan.io.views`` (view codes first, frame order
only when the file has none).
pydicom reads the file (SimpleITK/GDCM refuse files without ImagePositionPatient).
"""

from __future__ import annotations

import datetime
import re
from typing import List, Optional, Tuple

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from bonescan.errors import BoneScanInputError
from bonescan.io.canonical import build_study
from bonescan.io.views import dicom_text, frame_views
from bonescan.study import Study

_AGE_UNITS = {"Y": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}


def _age_years(ds) -> Optional[float]:
    match = re.fullmatch(r"(\d{1,3})([YMWD])", dicom_text(ds.get("PatientAge", "")).strip().upper())
    if match:
        return round(int(match.group(1)) * _AGE_UNITS[match.group(2)], 3)
    born = dicom_text(ds.get("PatientBirthDate", "")).strip()
    seen = next((dicom_text(ds.get(k, "")).strip() for k in ("StudyDate", "AcquisitionDate", "SeriesDate")
                 if dicom_text(ds.get(k, "")).strip()), "")
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
    modality = dicom_text(ds.get("Modality", "")).strip().upper()
    if modality != "NM":
        raise BoneScanInputError(path, f"modality is {modality or 'missing'}, not NM", "a bone scan is a nuclear medicine (NM) image")
    frames = _pixels(path, ds).astype(np.float64)
    warnings: List[str] = []
    if frames.min() < 0:
        warnings.append("negative pixel values set to 0")
        frames = np.clip(frames, 0, None)
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        frames = frames * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0)

    views, view_source, view_warnings = frame_views(ds, len(frames))
    known = [v for v in views if v]
    if len(known) != len(set(known)):
        twice = next(v for v in known if known.count(v) > 1)
        raise BoneScanInputError(path, f"two frames both claim the {twice} view",
                                 "check DetectorVector and the ViewCodeSequence of the detector items")
    if len(frames) > 2:
        raise BoneScanInputError(path, f"{len(frames)} frames" + ("" if known else " without view codes"),
                                 "expected one whole-body instance with an anterior and a posterior frame")
    warnings += view_warnings

    spacing = _spacing(ds)  # None (PixelSpacing missing or empty): build_study assumes 2.4 mm
    sex = dicom_text(ds.get("PatientSex", "")).strip().upper()
    return build_study(
        path, frames, views, spacing, view_source=view_source, warnings=warnings,
        age_years=_age_years(ds), sex=sex if sex in ("M", "F", "O") else None,
        patient_id=dicom_text(ds.get("PatientID", "")), study_instance_uid=dicom_text(ds.get("StudyInstanceUID", "")),
        series_instance_uid=dicom_text(ds.get("SeriesInstanceUID", "")), sop_instance_uid=dicom_text(ds.get("SOPInstanceUID", "")),
        nifti_affine=_nifti_affine(ds, spacing or (2.4, 2.4)),
    )
