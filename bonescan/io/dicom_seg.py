"""Label maps as DICOM Segmentation (SEG) objects on a planar 2-frame NM bone scan, and back.

Convention of the SEGs we write (what OHIF 3.13 overlays on the right NM frame, see
docs/domain.md section 7, and what dciodvfy and pydicom-seg accept):

- BINARY SEG, three segments always, numbered as our label values: 1 "Metastatic lesion"
  (category SCT 49755003 Morphologically abnormal structure, type SCT 14799000 Neoplasm,
  secondary, anatomic region SCT 272673000 Bone), 2 "Urinary bladder" (SCT 123037004
  Anatomical structure / SCT 89837001 Bladder), 3 "Bone" (SCT 123037004 / SCT 272673000).
  A lesion pixel is only in segment 1 (the label map holds one class per pixel). Empty frames
  are kept: one SEG frame per segment per NM frame (frames sorted by plane position).
- Every SEG frame names its NM frame in DerivationImageSequence > SourceImageSequence
  (ReferencedSOPInstanceUID + ReferencedFrameNumber); ReferencedSeriesSequence names the NM.
- One orientation for all frames (shared functional group): detector 1's
  ImageOrientationPatient, or [1,0,0,0,1,0] when the detector items have none, because OHIF
  applies detector 1's orientation to every NM frame; a per-view (mirrored) orientation makes
  it mirror the posterior overlay.
- Plane position of NM frame k (1-based): detector 1's ImagePositionPatient (or the origin)
  plus (k - 1) mm along the plane normal, the geometry SimpleITK/GDCM (MONAI Label) give the
  file; readers that sort frames by position (pydicom-seg) need distinct positions.
- The NM's FrameOfReferenceUID; an NM without one (non-conformant but seen) gets a UID derived
  from its SOPInstanceUID, because highdicom needs a frame of reference for multi-frame sources.
- Model output: SegmentAlgorithmType AUTOMATIC with the algorithm's name and version;
  physician labels: MANUAL.

``read_label_seg`` also reads the SEGs OHIF 3.13 exports (Label Map SEG, often RLE, no frame of
reference; or bit-packed BINARY SEG): frames are matched to NM frames by their references, and
segments to our classes by label text, then code, then segment number (OHIF's "Segment 1" is
lesion, "Segment 2" bladder, "Segment 3" bone).
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from bonescan.errors import BoneScanInputError
from bonescan.io.atomic import atomic_path
from bonescan.labels import BLADDER, BONE, LESION

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
LABEL_MAP_SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"
DEFAULT_ORIENTATION = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]

# (label, category, property type) per class: DICOM CID 7150 categories, CID 7159/7151 types (SNOMED CT).
SEGMENT_CODES = {
    LESION: ("Metastatic lesion", codes.cid7150.MorphologicallyAbnormalStructure, codes.cid7159.NeoplasmSecondary),
    BLADDER: ("Urinary bladder", codes.cid7150.AnatomicalStructure, codes.cid7151.Bladder),
    BONE: ("Bone", codes.cid7150.AnatomicalStructure, codes.cid7151.Bone),
}
# Property type codes other writers may use for our classes.
_CLASS_BY_CODE = {"94222008": LESION, "14799000": LESION, "128462008": LESION, "52988006": LESION,
                  "89837001": BLADDER, "272673000": BONE, "113192009": BONE}
_CLASS_BY_TEXT = [(re.compile(r"lesion|metasta", re.I), LESION), (re.compile(r"bladder", re.I), BLADDER),
                  (re.compile(r"bone|skelet", re.I), BONE)]
_HINT_CLASSES = 'name segments "Metastatic lesion", "Bladder" and "Bone" (or number them 1, 2, 3)'


def _load(source, what: str) -> Tuple[Dataset, Optional[str]]:
    """(dataset, name for messages) from a path or an already read dataset."""
    if isinstance(source, Dataset):
        return source, getattr(source, "filename", None) or None
    try:
        return pydicom.dcmread(str(source)), str(source)
    except Exception as exc:  # pydicom raises many types for damaged or non-DICOM files
        raise BoneScanInputError(source, f"cannot be read as DICOM {what} ({type(exc).__name__}: {exc})",
                                 f"give the DICOM {what} file") from None


def _nm_shape(nm: Dataset) -> Tuple[int, int, int]:
    return int(nm.get("NumberOfFrames", 1) or 1), int(nm.Rows), int(nm.Columns)


def _floats(value, n: int) -> Optional[List[float]]:
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(np.isfinite(out)) else None


def nm_frame_geometry(nm: Dataset) -> Tuple[List[float], List[List[float]], List[float]]:
    """(orientation, position of each frame, pixel spacing) used for SEG frames on this NM.

    Detector 1's orientation and position as OHIF and GDCM read them; frames step 1 mm along
    the normal; spacing as stored, or 1 mm (what GDCM assumes) when PixelSpacing is empty.
    """
    items = list(nm.get("DetectorInformationSequence", None) or [])
    first = items[0] if items else Dataset()
    orientation = _floats(first.get("ImageOrientationPatient", None), 6) or DEFAULT_ORIENTATION
    origin = np.array(_floats(first.get("ImagePositionPatient", None), 3) or [0.0, 0.0, 0.0])
    normal = np.cross(orientation[:3], orientation[3:])
    positions = [[round(float(v), 6) for v in origin + k * normal] for k in range(_nm_shape(nm)[0])]
    spacing = _floats(nm.get("PixelSpacing", None), 2)
    return orientation, positions, spacing if spacing and min(spacing) > 0 else [1.0, 1.0]


def _source_proxy(nm: Dataset) -> Dataset:
    """The NM's header dressed as an enhanced multi-frame image, so that highdicom writes it.

    highdicom takes plane orientation, positions and spacing of a multi-frame source from its
    functional groups, which NM images do not have (the geometry sits in the detector items);
    passing them as ``plane_positions`` instead makes highdicom drop the per-frame
    DerivationImageSequence that OHIF needs, so the proxy carries them.
    """
    frames, rows, columns = _nm_shape(nm)
    proxy = Dataset()
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID", "SOPInstanceUID", "PatientID",
                    "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID", "StudyDate",
                    "StudyTime", "ReferringPhysicianName", "Modality", "PositionReferenceIndicator"):
        setattr(proxy, keyword, nm.get(keyword, None) or "")
    proxy.LossyImageCompression = nm.get("LossyImageCompression", None) or "00"
    for keyword in ("LossyImageCompressionRatio", "LossyImageCompressionMethod"):
        if keyword in nm:
            setattr(proxy, keyword, nm.get(keyword))
    proxy.Rows, proxy.Columns, proxy.NumberOfFrames = rows, columns, frames
    proxy.FrameOfReferenceUID = nm.get("FrameOfReferenceUID", None) or generate_uid(
        entropy_srcs=[str(nm.SOPInstanceUID), "frame-of-reference"])
    orientation, positions, spacing = nm_frame_geometry(nm)
    shared = Dataset()
    shared.PixelMeasuresSequence = hd.PixelMeasuresSequence(spacing, 1.0, 1.0)
    shared.PlaneOrientationSequence = hd.PlaneOrientationSequence("PATIENT", orientation)
    proxy.SharedFunctionalGroupsSequence = [shared]
    per_frame = []
    for position in positions:
        item = Dataset()
        item.PlanePositionSequence = hd.PlanePositionSequence("PATIENT", position)
        per_frame.append(item)
    proxy.PerFrameFunctionalGroupsSequence = per_frame
    return proxy


def _segment_description(number: int, model_output: bool, algorithm_name: str, algorithm_version: str):
    label, category, prop = SEGMENT_CODES[number]
    algorithm = None
    if model_output:
        algorithm = hd.AlgorithmIdentificationSequence(name=algorithm_name, version=algorithm_version,
                                                        family=codes.cid7162.ArtificialIntelligence)
    return hd.seg.SegmentDescription(
        segment_number=number, segment_label=label, segmented_property_category=category,
        segmented_property_type=prop,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC if model_output else
        hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        algorithm_identification=algorithm,
        anatomic_regions=[codes.cid7151.Bone] if number == LESION else None,
    )


def write_label_seg(nm_path_or_dataset, label_map, path, *, model_output: bool, algorithm_name: str = "bonescan",
                    algorithm_version: str = "0.1.0", series_description: Optional[str] = None):
    """Write ``label_map`` (frames, rows, columns, values 0-3, the NM's pixel-array layout) as SEG.

    ``model_output`` says whether the labels come from our model (AUTOMATIC) or a physician
    (MANUAL). Returns the path; the SEG dataset is ``pydicom.dcmread(path)``.
    """
    nm, name = _load(nm_path_or_dataset, "NM image")
    shape = _nm_shape(nm)
    labels = np.asarray(label_map)
    if labels.shape != shape:
        raise BoneScanInputError(name, f"label map shape {labels.shape} does not match the NM image {shape}",
                                 "map canonical labels to the file's layout with labels_to_original first")
    if labels.size and (labels.min() < 0 or labels.max() > BONE or not np.array_equal(labels, np.rint(labels))):
        raise BoneScanInputError(name, "label values must be whole numbers 0-3",
                                 "0 background, 1 metastatic lesion, 2 bladder, 3 bone")
    seg = hd.seg.Segmentation(
        source_images=[_source_proxy(nm)],
        pixel_array=labels.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_segment_description(n, model_output, algorithm_name, algorithm_version)
                              for n in sorted(SEGMENT_CODES)],
        series_instance_uid=generate_uid(),
        series_number=900 if model_output else 901,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="bonescan",
        manufacturer_model_name=algorithm_name,
        software_versions=algorithm_version,
        device_serial_number="none",
        content_label="BONESCAN",
        content_description="bonescan model output" if model_output else "physician labels",
        series_description=series_description or ("bonescan segmentation" if model_output else "bonescan labels"),
        omit_empty_frames=False,
    )
    # Series date and time let a PACS query (QIDO-RS) tell the newest of several labels of a study.
    seg.SeriesDate, seg.SeriesTime = seg.ContentDate, seg.ContentTime
    with atomic_path(path) as tmp:
        seg.save_as(tmp)
    return path


# --------------------------------------------------------------------------------------------- reading


def _segment_class(item: Dataset) -> Optional[int]:
    """Our class of one SegmentSequence item: label/description text, then code, then number."""
    text = " ".join(str(item.get(k, "") or "") for k in ("SegmentLabel", "SegmentDescription"))
    for pattern, value in _CLASS_BY_TEXT:
        if pattern.search(text):
            return value
    for code in item.get("SegmentedPropertyTypeCodeSequence", None) or []:
        if str(code.get("CodeValue", "")) in _CLASS_BY_CODE:
            return _CLASS_BY_CODE[str(code.CodeValue)]
    number = int(item.get("SegmentNumber", 0) or 0)
    return number if number in SEGMENT_CODES else None


def _frame_reference(seg: Dataset, index: int, nm: Dataset, name) -> int:
    """0-based NM frame that SEG frame ``index`` lies on, from its derivation references."""
    nm_frames = _nm_shape(nm)[0]
    groups = list(seg.get("PerFrameFunctionalGroupsSequence", None) or [])
    item = groups[index] if index < len(groups) else Dataset()
    shared = (seg.get("SharedFunctionalGroupsSequence", None) or [Dataset()])[0]
    refs = [src for group in (item, shared) for deriv in group.get("DerivationImageSequence", None) or []
            for src in deriv.get("SourceImageSequence", None) or []]
    if not refs:  # single-frame sources: the top-level reference is enough
        refs = list(seg.get("SourceImageSequence", None) or [])
    if not refs:
        raise BoneScanInputError(name, f"SEG frame {index + 1} names no source image frame",
                                 "export the SEG from the viewer again (DerivationImageSequence is missing)")
    ref = next((r for r in refs if str(r.get("ReferencedSOPInstanceUID", "")) == str(nm.SOPInstanceUID)), None)
    if ref is None:
        raise BoneScanInputError(name, f"SEG frame {index + 1} references instance {refs[0].get('ReferencedSOPInstanceUID')}, "
                                 f"not the NM image {nm.SOPInstanceUID}", "save the SEG drawn on this study")
    number = ref.get("ReferencedFrameNumber", None)
    if number is None:
        if nm_frames == 1:
            return 0
        raise BoneScanInputError(name, f"SEG frame {index + 1} does not say which of the {nm_frames} NM frames it lies on",
                                 "ReferencedFrameNumber is missing; export the SEG from OHIF 3.13 or bonescan")
    number = int(number[0] if isinstance(number, (list, pydicom.multival.MultiValue)) else number)
    if not 1 <= number <= nm_frames:
        raise BoneScanInputError(name, f"SEG frame {index + 1} references NM frame {number}, but the image has {nm_frames}",
                                 "save the SEG drawn on this study")
    return number - 1


def read_label_seg(seg_path_or_dataset, nm_dataset_or_path) -> np.ndarray:
    """Label map (frames, rows, columns) uint8 in the NM's pixel-array layout from a SEG.

    Reads BINARY, FRACTIONAL (>= half of the maximum counts) and Label Map SEGs. Where segments
    overlap, a lesion wins over bladder, bladder over bone, as in ``compose_label_map``.
    """
    seg, name = _load(seg_path_or_dataset, "Segmentation")
    nm, _ = _load(nm_dataset_or_path, "NM image")
    sop_class = str(seg.get("SOPClassUID", ""))
    if sop_class not in (SEG_STORAGE, LABEL_MAP_SEG_STORAGE) or "PixelData" not in seg:
        raise BoneScanInputError(name, f"not a DICOM Segmentation (SOP class {sop_class or 'missing'})",
                                 "save the labels from the viewer as DICOM SEG")
    shape = _nm_shape(nm)
    if (int(seg.Rows), int(seg.Columns)) != shape[1:]:
        raise BoneScanInputError(name, f"SEG frames are {seg.Rows}x{seg.Columns}, the NM image {shape[1]}x{shape[2]}",
                                 "save the SEG drawn on this study")
    classes: Dict[int, int] = {}
    for item in seg.get("SegmentSequence", None) or []:
        value = _segment_class(item)
        if value is None:
            raise BoneScanInputError(name, f"segment {item.get('SegmentNumber')} \"{item.get('SegmentLabel', '')}\" "
                                     "is not a bone scan class", _HINT_CLASSES)
        classes[int(item.SegmentNumber)] = value
    try:
        pixels = seg.pixel_array
    except Exception as exc:
        raise BoneScanInputError(name, f"SEG pixel data cannot be decoded ({type(exc).__name__}: {exc})",
                                 "export the SEG again (uncompressed or RLE)") from None
    pixels = pixels.reshape((-1,) + shape[1:])

    label_map_type = sop_class == LABEL_MAP_SEG_STORAGE or str(seg.get("SegmentationType", "")) == "LABELMAP"
    fractional = str(seg.get("SegmentationType", "")) == "FRACTIONAL"
    groups = list(seg.get("PerFrameFunctionalGroupsSequence", None) or [])
    masks = np.zeros((BONE + 1,) + shape, dtype=bool)  # one mask per class, index = label value
    for index, frame in enumerate(pixels):
        target = _frame_reference(seg, index, nm, name)
        if label_map_type:
            unknown = set(np.unique(frame).tolist()) - {0} - set(classes)
            if unknown:
                raise BoneScanInputError(name, f"pixel values {sorted(unknown)} are not described segments",
                                         _HINT_CLASSES)
            for number, value in classes.items():
                masks[value, target] |= frame == number
            continue
        group = groups[index] if index < len(groups) else Dataset()
        ident = group.get("SegmentIdentificationSequence", None) or []
        number = int(ident[0].ReferencedSegmentNumber) if ident else None
        if number not in classes:
            raise BoneScanInputError(name, f"SEG frame {index + 1} belongs to undescribed segment {number}",
                                     "the SEG is damaged; export it again")
        threshold = float(seg.get("MaximumFractionalValue", 255)) / 2 if fractional else 0
        masks[classes[number], target] |= frame > threshold
    labels = np.zeros(shape, dtype=np.uint8)
    for value in (BONE, BLADDER, LESION):  # later classes win
        labels[masks[value]] = value
    return labels
