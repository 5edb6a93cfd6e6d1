"""The ``bstbi`` result as a DICOM TID 1500 Measurement Report (Comprehensive 3D SR), and back.

PACS and viewers keep and show an SR next to the image and the SEG it was measured on; the
JSON result stays with the server. Content (highdicom's TID 1500 templates):

- one image-level group (TID 1501) on the NM image: "Bone metastases present" yes/no (SCT
  373066001/373067005), BSTBI and its anterior/posterior parts (%), metastasis probability (1),
  number of lesions (SCT 246206008), skeleton area (cm2; lesions included, mean of the views);
- one group per class segment of the SEG (TID 1411, whole segment): lesion and bladder area,
  SCT 42798000 "Area" in cm2, derivation SCT 373098007 "Mean" (mean of the views);
- one group per lesion (TID 1410) on the SEG frame of the lesion segment in the lesion's view:
  Area (cm2), mean uptake ratio to normal bone (1), centroid row and column ({pixel}, in the
  canonical anterior orientation of the result JSON), and DCM 111031 "Image View" = SCT
  anterior/posterior projection.

Concepts without a standard code use the private coding scheme ``99BONESCAN`` (declared in
CodingSchemeIdentificationSequence); units are UCUM.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import highdicom as hd
import pydicom
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from bonescan.io import views as nm_views
from bonescan.io.atomic import atomic_path
from bonescan.io.dicom_seg import SEGMENT_CODES
from bonescan.labels import BLADDER, LESION

SCHEME = "99BONESCAN"


def _private(value: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value, SCHEME, meaning)


BSTBI = _private("BSTBI", "Bone scan tumour burden index")
BSTBI_VIEW = {"anterior": _private("BSTBI-ANT", "Bone scan tumour burden index, anterior view"),
              "posterior": _private("BSTBI-POST", "Bone scan tumour burden index, posterior view")}
PROBABILITY = _private("METPROB", "Probability of bone metastases")
METASTATIC = _private("METASTATIC", "Bone metastases present")
SKELETON_AREA = _private("SKELAREA", "Skeleton area")
UPTAKE_RATIO = _private("UPTAKE", "Mean uptake ratio to normal bone")
CENTROID = (_private("CENTROW", "Centroid row, anterior orientation"),
            _private("CENTCOL", "Centroid column, anterior orientation"))
NUMBER_OF_LESIONS = codes.SCT.NumberOfLesions
AREA = codes.SCT.Area
VIEW_CONCEPTS = {view: hd.sr.CodedConcept(value, nm_views.SCHEME, meaning) for view, (value, meaning) in nm_views.VIEW_CODES.items()}

CM2 = hd.sr.CodedConcept("cm2", "UCUM", "square centimeter")
PERCENT = hd.sr.CodedConcept("%", "UCUM", "percent")
ONE = hd.sr.CodedConcept("1", "UCUM", "no units")
PIXEL = hd.sr.CodedConcept("{pixel}", "UCUM", "pixel")


def _dataset(source) -> Dataset:
    return source if isinstance(source, Dataset) else pydicom.dcmread(str(source))


def _view_frames(nm: Dataset) -> Dict[str, int]:
    """1-based NM frame of each view, decided as ``read_dicom`` decides it."""
    views, _, _ = nm_views.frame_views(nm, int(nm.get("NumberOfFrames", 1) or 1))
    return {v: i + 1 for i, v in enumerate(views) if v}


def _seg_frame(seg: Dataset, segment: int, nm_frame: int) -> Optional[int]:
    """1-based SEG frame holding ``segment`` on NM frame ``nm_frame``, if there is one."""
    for index, group in enumerate(seg.get("PerFrameFunctionalGroupsSequence", None) or [], start=1):
        ident = group.get("SegmentIdentificationSequence", None) or []
        refs = [s for d in group.get("DerivationImageSequence", None) or [] for s in d.get("SourceImageSequence", None) or []]
        if ident and int(ident[0].ReferencedSegmentNumber) == segment and refs \
                and int(refs[0].get("ReferencedFrameNumber", 0) or 0) == nm_frame:
            return index
    return None


def _num(name, value, unit, **kwargs) -> Optional[hd.sr.Measurement]:
    if value is None:
        return None
    return hd.sr.Measurement(name=name, value=float(value), unit=unit, **kwargs)


def _lesion_group(index: int, lesion: dict, nm: Dataset, seg: Dataset, frames: Dict[str, int], algorithm):
    view = lesion.get("view")
    measurements = [
        _num(AREA, lesion.get("area_cm2"), CM2),
        _num(UPTAKE_RATIO, lesion.get("mean_uptake_ratio"), ONE),
        *[_num(name, value, PIXEL) for name, value in zip(CENTROID, lesion.get("centroid_rc") or [None, None])],
    ]
    common = {
        "tracking_identifier": hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"Lesion {index}"),
        "finding_type": SEGMENT_CODES[LESION][2], "finding_sites": [hd.sr.FindingSite(codes.SCT.Bone)],
        "algorithm_id": algorithm, "measurements": [m for m in measurements if m is not None],
        "qualitative_evaluations": [hd.sr.QualitativeEvaluation(codes.DCM.ImageView, VIEW_CONCEPTS[view])]
        if view in VIEW_CONCEPTS else None,
    }
    nm_frame = frames.get(view)
    seg_frame = _seg_frame(seg, LESION, nm_frame) if nm_frame else None
    source = hd.sr.SourceImageForSegmentation(nm.SOPClassUID, nm.SOPInstanceUID, [nm_frame] if nm_frame else None)
    if seg_frame is None:  # no frame of the lesion segment on that view: reference the whole segment
        segment = hd.sr.ReferencedSegment(seg.SOPClassUID, seg.SOPInstanceUID, LESION, source_images=[source])
        return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(referenced_segment=segment, **common)
    frame = hd.sr.ReferencedSegmentationFrame(seg.SOPClassUID, seg.SOPInstanceUID, seg_frame, LESION, source)
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(referenced_segment=frame, **common)


def write_measurement_sr(nm_dataset, seg_dataset, result: dict, path, algorithm_version: str = "0.1.0"):
    """Write the ``bstbi`` task's ``result`` as a TID 1500 SR referencing the NM image and SEG."""
    nm, seg = _dataset(nm_dataset), _dataset(seg_dataset)
    algorithm = hd.sr.AlgorithmIdentification(name="bonescan", version=algorithm_version)
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=["bonescan", algorithm_version]), name="bonescan",
            manufacturer_name="bonescan", model_name=f"bonescan {algorithm_version}"),
    )
    yes_no = codes.SCT.Yes if result.get("metastatic") else codes.SCT.No
    image_measurements = [
        _num(BSTBI, result.get("bstbi"), PERCENT),
        *[_num(BSTBI_VIEW[v], result.get(f"bstbi_{v}"), PERCENT) for v in ("anterior", "posterior")],
        _num(PROBABILITY, result.get("metastasis_probability"), ONE),
        _num(NUMBER_OF_LESIONS, result.get("lesion_count"), ONE),
        _num(SKELETON_AREA, result.get("skeleton_area_cm2"), CM2, derivation=codes.SCT.Mean),
    ]
    groups: List = [hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="Study result"),
        algorithm_id=algorithm,
        measurements=[m for m in image_measurements if m is not None],
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(METASTATIC, yes_no)],
        source_images=[hd.sr.SourceImageForMeasurementGroup(nm.SOPClassUID, nm.SOPInstanceUID)],
    )]
    source = hd.sr.SourceImageForSegmentation(nm.SOPClassUID, nm.SOPInstanceUID)
    for value, key in ((LESION, "lesion_area_cm2"), (BLADDER, "bladder_area_cm2")):
        if result.get(key) is None:
            continue
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=SEGMENT_CODES[value][0]),
            referenced_segment=hd.sr.ReferencedSegment(seg.SOPClassUID, seg.SOPInstanceUID, value, source_images=[source]),
            finding_type=SEGMENT_CODES[value][2], algorithm_id=algorithm,
            measurements=[_num(AREA, result[key], CM2, derivation=codes.SCT.Mean)],
        ))
    frames = _view_frames(nm)
    groups += [_lesion_group(i, lesion, nm, seg, frames, algorithm) for i, lesion in enumerate(result.get("lesions") or [], 1)]

    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=codes.LN.RadionuclideScanOfWholeBody,
        imaging_measurements=groups,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[nm, seg], content=report[0], series_instance_uid=generate_uid(), series_number=902,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="bonescan", is_complete=True,
        series_description="bonescan measurements",
        coding_schemes=[CodingSchemeIdentificationItem(SCHEME, name="bonescan concepts",
                                                       responsible_organization="bonescan project")],
    )
    _drop_segment_numbers_of_frame_references(sr)
    with atomic_path(path) as tmp:
        sr.save_as(tmp)
    return path


def _drop_segment_numbers_of_frame_references(item: Dataset) -> None:
    """Remove ReferencedSegmentNumber where ReferencedFrameNumber names the SEG frame.

    highdicom 0.22 writes both in a Referenced Segmentation Frame item, which the Image SOP
    Instance Reference Macro forbids (dciodvfy: "Shall not be present when
    ReferencedFrameNumber is present"); a SEG frame already belongs to exactly one segment.
    """
    for child in item.get("ContentSequence", None) or []:
        for ref in child.get("ReferencedSOPSequence", None) or []:
            if "ReferencedFrameNumber" in ref and "ReferencedSegmentNumber" in ref:
                del ref.ReferencedSegmentNumber
        _drop_segment_numbers_of_frame_references(child)


def _key(code) -> str:
    return f"{code.scheme_designator}:{code.value}"


def _values(group) -> Dict[str, float]:
    return {_key(m.name): float(m.value) for m in group.get_measurements()}


def read_measurement_sr(path) -> dict:
    """The numbers of an SR written by ``write_measurement_sr`` as a dict like the result JSON."""
    ds = _dataset(path)
    report = hd.sr.MeasurementReport.from_sequence([ds])
    out: dict = {}
    lesions = []
    for group in report.get_image_measurement_groups():
        values = _values(group)
        if _key(BSTBI) not in values:
            continue
        out["bstbi"] = values[_key(BSTBI)]
        for view, code in BSTBI_VIEW.items():
            out[f"bstbi_{view}"] = values.get(_key(code))
        out["metastasis_probability"] = values.get(_key(PROBABILITY))
        count = values.get(_key(NUMBER_OF_LESIONS))
        out["lesion_count"] = round(count) if count is not None else None
        out["skeleton_area_cm2"] = values.get(_key(SKELETON_AREA))
        for evaluation in group.get_qualitative_evaluations(name=METASTATIC):
            out["metastatic"] = evaluation.value.value == codes.SCT.Yes.value
    groups = report.get_volumetric_roi_measurement_groups() + report.get_planar_roi_measurement_groups()
    for group in groups:
        identifier = str(group.tracking_identifier)
        finding = group.finding_type.value if group.finding_type is not None else None
        values = _values(group)
        if identifier.startswith("Lesion "):
            views = [e.value for e in group.get_qualitative_evaluations(name=codes.DCM.ImageView)]
            rc = [values.get(_key(c)) for c in CENTROID]
            lesions.append((int(identifier.split()[1]), {
                "view": next((v for v, c in VIEW_CONCEPTS.items() if views and views[0].value == c.value), None),
                "centroid_rc": rc if None not in rc else None,
                "area_cm2": values.get(_key(AREA)),
                "mean_uptake_ratio": values.get(_key(UPTAKE_RATIO)),
            }))
        elif finding == SEGMENT_CODES[LESION][2].value:
            out["lesion_area_cm2"] = values.get(_key(AREA))
        elif finding == SEGMENT_CODES[BLADDER][2].value:
            out["bladder_area_cm2"] = values.get(_key(AREA))
    out["lesions"] = [lesion for _, lesion in sorted(lesions, key=lambda pair: pair[0])]
    return out
