"""Write a canonical study as one DICOM NM whole-body instance, the way dual-head cameras store it.

Phantoms and tests need files that look like the real thing (one 2-frame NM Image Storage
instance, view codes in the detector items, posterior stored as seen from behind) and that a
strict validator (dciodvfy) and MONAI Label's SimpleITK/GDCM conversion both accept.
"""

from __future__ import annotations

import datetime
import pathlib
from typing import Optional, Sequence, Tuple

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from bonescan.io.atomic import atomic_path
from bonescan.io.views import SCHEME, VIEW_CODES

NM_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.20"
# Patient-based direction cosines: image column index grows along LPS x (anterior view shows the
# patient's right on the left) or against it (posterior seen from behind); rows run head to feet.
ORIENTATIONS = {"anterior": [1.0, 0.0, 0.0, 0.0, 0.0, -1.0], "posterior": [-1.0, 0.0, 0.0, 0.0, 0.0, -1.0]}


def _code(value: str, meaning: str, scheme: str = "SCT") -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _to_uint16(counts) -> np.ndarray:
    data = np.asarray(counts)
    if data.ndim != 3 or data.shape[0] != 2:
        raise ValueError(f"counts must be canonical (2, rows, columns), got shape {data.shape}")
    if data.dtype != np.uint16:
        data = np.clip(np.rint(np.nan_to_num(data.astype(np.float64))), 0, 65535).astype(np.uint16)
    return data


def _age_string(age_years: float) -> str:
    if age_years >= 2:
        return f"{min(int(age_years), 999):03d}Y"
    return f"{int(round(age_years * 12)):03d}M"


def _patient_module(ds: Dataset, patient_id, patient_name, sex, age_years) -> None:
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = sex if sex in ("M", "F", "O") else ""
    if age_years is not None:
        ds.PatientAge = _age_string(age_years)  # Patient Study module, e.g. "067Y"


def _study_series_modules(ds: Dataset, study_uid, series_uid, description, now: datetime.datetime) -> None:
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = now.strftime("%H%M%S")
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.StudyDescription = "NM whole body bone scan"
    ds.Modality = "NM"
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.SeriesNumber = 1
    ds.ImageLaterality = "B"  # both sides; keeps series Laterality (2C) absent
    ds.SeriesDescription = description or "WB ANT/POST"
    ds.FrameOfReferenceUID = generate_uid()
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = "bonescan"
    ds.ManufacturerModelName = "bonescan writer"
    ds.InstanceNumber = 1


def _orientation_module(ds: Dataset) -> None:
    """NM/PET Patient Orientation: supine, head first (CID 19, 20, 21)."""
    orientation = _code("102538003", "recumbent")
    orientation.PatientOrientationModifierCodeSequence = DicomSequence([_code("40199007", "supine")])
    ds.PatientOrientationCodeSequence = DicomSequence([orientation])
    ds.PatientGantryRelationshipCodeSequence = DicomSequence([_code("102540008", "headfirst")])


def _isotope_module(ds: Dataset) -> None:
    """NM Isotope: one 140 keV window, 99mTc-MDP given intravenously."""
    window = Dataset()
    window.EnergyWindowName = "Tc99m"
    window_range = Dataset()
    window_range.EnergyWindowLowerLimit = "126"
    window_range.EnergyWindowUpperLimit = "154"
    window.EnergyWindowRangeSequence = DicomSequence([window_range])
    ds.EnergyWindowInformationSequence = DicomSequence([window])
    drug = Dataset()
    drug.RadionuclideCodeSequence = DicomSequence([_code("72454006", "^99m^Technetium")])
    drug.Radiopharmaceutical = "Tc-99m MDP"
    drug.RadiopharmaceuticalCodeSequence = DicomSequence([_code("96390006", "Technetium Tc^99m^ medronate")])
    drug.AdministrationRouteCodeSequence = DicomSequence([_code("47625008", "Intravenous route")])
    ds.RadiopharmaceuticalInformationSequence = DicomSequence([drug])


def _detector_item(view: str, columns: int, spacing: Tuple[float, float], view_codes: bool, position: bool) -> Dataset:
    item = Dataset()
    item.CollimatorGridName = "LEHR"
    item.CollimatorType = "PARA"
    item.FieldOfViewShape = "RECTANGLE"
    item.FocalDistance = None
    item.XFocusCenter = None
    item.YFocusCenter = None
    item.ZoomFactor = [1.0, 1.0]
    # Type 2: present but empty without positions (such files exist; GDCM refuses them).
    item.ImagePositionPatient = item.ImageOrientationPatient = None
    if position:
        cos = ORIENTATIONS[view]
        # Image centre on x = 0, top row at z = 0: both heads see the same coronal plane.
        x0 = -cos[0] * spacing[1] * (columns - 1) / 2
        item.ImagePositionPatient = [round(x0, 3), 0.0, 0.0]
        item.ImageOrientationPatient = cos
    if view_codes:
        item.ViewCodeSequence = DicomSequence([_code(*VIEW_CODES[view], SCHEME)])
    return item


def write_whole_body_nm(
    path,
    counts,
    *,
    pixel_spacing: Tuple[float, float] = (2.4, 2.4),
    patient_id: str = "",
    patient_name: str = "",
    sex: Optional[str] = None,
    age_years: Optional[float] = None,
    study_uid: Optional[str] = None,
    series_uid: Optional[str] = None,
    sop_uid: Optional[str] = None,
    frame_order: Sequence[str] = ("anterior", "posterior"),
    view_codes: bool = True,
    position: bool = True,
    description: str = "",
) -> pathlib.Path:
    """Write canonical ``counts`` (2, H, W) as one 2-frame NM whole-body instance; return the path.

    View 0 of ``counts`` is anterior, view 1 the posterior in anterior orientation; the posterior
    frame is mirrored back to the as-seen-from-behind storage orientation. ``frame_order`` chooses
    which view is frame 1 (detector 1). Values are rounded and clipped to uint16.
    """
    path = pathlib.Path(path)
    frame_order = tuple(frame_order)
    if sorted(frame_order) != ["anterior", "posterior"]:
        raise ValueError(f"frame_order must hold 'anterior' and 'posterior' once each, got {frame_order}")
    data = _to_uint16(counts)
    stored = {"anterior": data[0], "posterior": data[1][:, ::-1]}
    frames = np.ascontiguousarray(np.stack([stored[v] for v in frame_order]))
    rows, columns = frames.shape[1:]
    spacing = (float(pixel_spacing[0]), float(pixel_spacing[1]))
    now = datetime.datetime.now()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = NM_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.preamble = b"\0" * 128

    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = NM_IMAGE_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    _patient_module(ds, patient_id, patient_name, sex, age_years)
    _study_series_modules(ds, study_uid, series_uid, description, now)
    _orientation_module(ds)

    # General Image, NM Image
    ds.ImageType = ["ORIGINAL", "PRIMARY", "WHOLE BODY", "EMISSION"]
    ds.PatientOrientation = ""
    ds.LossyImageCompression = "00"
    ds.CountsAccumulated = int(frames.astype(np.int64).sum())
    ds.ActualFrameDuration = 0
    ds.AcquisitionTerminationCondition = "MANU"
    ds.ScanVelocity = None
    ds.WholeBodyTechnique = ["1PS", "2PS"]
    ds.ScanLength = int(round(rows * spacing[0]))
    ds.AcquisitionContextSequence = DicomSequence([])

    # Image Pixel, NM Image Pixel, Multi-frame, NM Multi-frame
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(rows), int(columns)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelSpacing = [f"{spacing[0]:.6g}", f"{spacing[1]:.6g}"]
    ds.NumberOfFrames = 2
    ds.FrameIncrementPointer = [0x00540010, 0x00540020]  # EnergyWindowVector, DetectorVector
    ds.EnergyWindowVector = [1, 1]
    ds.NumberOfEnergyWindows = 1
    ds.DetectorVector = [1, 2]
    ds.NumberOfDetectors = 2

    _isotope_module(ds)
    ds.DetectorInformationSequence = DicomSequence(
        [_detector_item(v, columns, spacing, view_codes, position) for v in frame_order]
    )
    ds.PixelData = frames.tobytes()
    with atomic_path(path) as tmp:
        ds.save_as(tmp, write_like_original=False)
    return path
