"""DICOM SEG and SR on planar 2-frame NM: our own SEGs, OHIF 3.13-style SEGs, and the TID 1500 SR."""

import shutil
import subprocess

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

from bonescan.errors import BoneScanInputError
from bonescan.io import labels_to_original, read_study
from bonescan.io.dicom_seg import LABEL_MAP_SEG_STORAGE, SEG_STORAGE, read_label_seg, write_label_seg
from bonescan.io.dicom_sr import read_measurement_sr, write_measurement_sr
from bonescan.labels import compose_label_map
from bonescan.measure import measure
from bonescan.phantoms.export import write_study
from bonescan.phantoms.generator import make_phantom

ANT_FIRST, POST_FIRST = ("anterior", "posterior"), ("posterior", "anterior")
DCIODVFY = shutil.which("dciodvfy")
pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR DS")  # OHIF writes NaN spacing


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(11, metastatic=True, n_lesions=3, study_id="segsr")


def write_nm(tmp_path, phantom, order=ANT_FIRST, position=True):
    """The phantom as the exporter stores it, and its label map in the file's own layout."""
    out = tmp_path / f"nm_{order[0]}_{int(position)}"
    (out / "truth").mkdir(parents=True)
    write_study(phantom, out, {"frame_order": order, "view_codes": True, "position": position})
    path = out / f"{phantom.info['study_id']}.dcm"
    canonical = compose_label_map(phantom.lesion, phantom.bladder, phantom.skeleton)
    return path, labels_to_original(canonical, read_study(path).meta), canonical


def dciodvfy_errors(path):
    run = subprocess.run([DCIODVFY, str(path)], check=False, capture_output=True, text=True, timeout=60)
    lines = (run.stdout + run.stderr).splitlines()
    return [line for line in lines if line.startswith("Error")], [line for line in lines if line.startswith("Warning")]


def frame_refs(seg):
    """(SOP instance UID, frame number) each SEG frame references."""
    refs = []
    for group in seg.PerFrameFunctionalGroupsSequence:
        src = group.DerivationImageSequence[0].SourceImageSequence[0]
        refs.append((src.ReferencedSOPInstanceUID, int(src.ReferencedFrameNumber)))
    return refs


# ------------------------------------------------------------------------- OHIF 3.13-style SEGs (pydicom)


def ohif_seg(nm, labels, segments, *, label_map=True, frame_order=None):
    """A SEG shaped like OHIF 3.13's exports: no frame of reference, NaN spacing, detector 1's orientation.

    ``segments`` maps segment number -> (label, our class value). Label Map: one 8-bit frame per
    NM frame (pixel = segment number), RLE Lossless. Binary: bit-packed, one frame per non-empty
    segment and NM frame, segment identification per frame.
    """
    frames, rows, columns = labels.shape
    frame_order = list(frame_order or range(frames))
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = LABEL_MAP_SEG_STORAGE if label_map else SEG_STORAGE
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.is_little_endian, ds.is_implicit_VR = True, False
    for keyword in ("StudyInstanceUID", "PatientID", "PatientName"):
        setattr(ds, keyword, nm.get(keyword, ""))
    ds.SeriesInstanceUID, ds.Modality = generate_uid(), "SEG"
    ds.SegmentationType = "LABELMAP" if label_map else "BINARY"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, columns, 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8 if label_map else 1
    ds.HighBit, ds.PixelRepresentation = ds.BitsStored - 1, 0
    series = Dataset()
    series.SeriesInstanceUID = nm.SeriesInstanceUID
    instance = Dataset()
    instance.ReferencedSOPClassUID, instance.ReferencedSOPInstanceUID = nm.SOPClassUID, nm.SOPInstanceUID
    series.ReferencedInstanceSequence = [instance]
    ds.ReferencedSeriesSequence = [series]
    items = []
    for number, (label, _) in segments.items():
        item = Dataset()
        item.SegmentNumber, item.SegmentLabel, item.SegmentAlgorithmType = number, label, "MANUAL"
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "85756007", "SCT", "Tissue"
        item.SegmentedPropertyCategoryCodeSequence = item.SegmentedPropertyTypeCodeSequence = [code]
        items.append(item)
    ds.SegmentSequence = items
    shared = Dataset()
    measures = Dataset()
    measures.add_new("PixelSpacing", "DS", "NaN\\NaN")
    shared.PixelMeasuresSequence = [measures]
    orientation = Dataset()
    detector = nm.DetectorInformationSequence[0]
    orientation.ImageOrientationPatient = detector.get("ImageOrientationPatient", None) or [1, 0, 0, 0, 1, 0]
    shared.PlaneOrientationSequence = [orientation]
    ds.SharedFunctionalGroupsSequence = [shared]

    value_of = {value: number for number, (_, value) in segments.items()}
    pixels, groups = [], []
    for f in frame_order:
        wanted = [None] if label_map else [n for n in segments if (labels[f] == segments[n][1]).any()]
        for number in wanted:
            group = Dataset()
            src = Dataset()
            src.ReferencedSOPClassUID, src.ReferencedSOPInstanceUID = nm.SOPClassUID, nm.SOPInstanceUID
            src.ReferencedFrameNumber = f + 1
            derivation = Dataset()
            derivation.SourceImageSequence = [src]
            group.DerivationImageSequence = [derivation]
            if label_map:
                pixels.append(np.vectorize(lambda v: value_of.get(v, 0), otypes=[np.uint8])(labels[f]))
            else:
                ident = Dataset()
                ident.ReferencedSegmentNumber = number
                group.SegmentIdentificationSequence = [ident]
                pixels.append(labels[f] == segments[number][1])
            groups.append(group)
    ds.PerFrameFunctionalGroupsSequence = groups
    ds.NumberOfFrames = len(pixels)
    stack = np.stack(pixels)
    if label_map:
        ds.PixelData = stack.astype(np.uint8).tobytes()
        ds.compress(RLELossless)
    else:
        ds.PixelData = np.packbits(stack.ravel(), bitorder="little").tobytes()
    return ds


# ------------------------------------------------------------------------- our SEG


@pytest.mark.parametrize("order", [ANT_FIRST, POST_FIRST])
@pytest.mark.parametrize("position", [True, False])
def test_own_seg_round_trip_and_ohif_convention(tmp_path, phantom, order, position):
    nm_path, labels, _ = write_nm(tmp_path, phantom, order, position)
    seg_path = write_label_seg(nm_path, labels, tmp_path / "seg.dcm", model_output=True, algorithm_version="9.9")
    nm, seg = pydicom.dcmread(nm_path), pydicom.dcmread(seg_path)

    np.testing.assert_array_equal(read_label_seg(seg_path, nm_path), labels)
    # One frame per segment and NM frame, each naming the NM instance and its frame.
    assert sorted(frame_refs(seg)) == sorted((nm.SOPInstanceUID, f) for f in (1, 2) for _ in range(3))
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == nm.SeriesInstanceUID
    detector1 = nm.DetectorInformationSequence[0].get("ImageOrientationPatient", None)
    expected = [float(v) for v in detector1] if position else [1, 0, 0, 0, 1, 0]
    orientation = seg.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient
    assert [float(v) for v in orientation] == expected
    assert all("PlaneOrientationSequence" not in g for g in seg.PerFrameFunctionalGroupsSequence)
    positions = {frame: tuple(g.PlanePositionSequence[0].ImagePositionPatient)
                 for (_, frame), g in zip(frame_refs(seg), seg.PerFrameFunctionalGroupsSequence)}
    assert len(set(positions.values())) == 2  # distinct per NM frame
    # The lesion segment's frame on each NM frame holds exactly that frame's lesion pixels.
    pixels = seg.pixel_array
    for index, ((_, frame), group) in enumerate(zip(frame_refs(seg), seg.PerFrameFunctionalGroupsSequence)):
        if group.SegmentIdentificationSequence[0].ReferencedSegmentNumber == 1:
            np.testing.assert_array_equal(pixels[index] == 1, labels[frame - 1] == 1)
    segments = {int(s.SegmentNumber): s for s in seg.SegmentSequence}
    assert [segments[n].SegmentLabel for n in (1, 2, 3)] == ["Metastatic lesion", "Urinary bladder", "Bone"]
    assert {s.SegmentAlgorithmType for s in segments.values()} == {"AUTOMATIC"}
    algorithm = segments[1].SegmentationAlgorithmIdentificationSequence[0]
    assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("bonescan", "9.9")
    assert seg.SegmentationType == "BINARY"


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy not installed")
@pytest.mark.parametrize("model_output", [True, False])
def test_own_seg_passes_dciodvfy(tmp_path, phantom, model_output):
    nm_path, labels, _ = write_nm(tmp_path, phantom, POST_FIRST, position=False)
    seg_path = write_label_seg(nm_path, labels, tmp_path / "seg.dcm", model_output=model_output)
    errors, _ = dciodvfy_errors(seg_path)
    assert errors == []
    seg = pydicom.dcmread(seg_path)
    assert {s.SegmentAlgorithmType for s in seg.SegmentSequence} == {"AUTOMATIC" if model_output else "MANUAL"}
    assert all(("SegmentationAlgorithmIdentificationSequence" in s) == model_output for s in seg.SegmentSequence)


def test_own_seg_reads_in_pydicom_seg(tmp_path, phantom):
    """MONAI Label's stock SEG reader sorts frames by position: the NM frame order must come out."""
    pydicom_seg = pytest.importorskip("pydicom_seg")
    nm_path, labels, _ = write_nm(tmp_path, phantom, POST_FIRST)
    seg_path = write_label_seg(nm_path, labels, tmp_path / "seg.dcm", model_output=True)
    result = pydicom_seg.MultiClassReader().read(pydicom.dcmread(seg_path))
    np.testing.assert_array_equal(result.data, labels)


def test_nm_without_frame_of_reference(tmp_path, phantom):
    nm_path, labels, _ = write_nm(tmp_path, phantom, ANT_FIRST, position=False)
    nm = pydicom.dcmread(nm_path)
    del nm.FrameOfReferenceUID
    seg_path = write_label_seg(nm, labels, tmp_path / "seg.dcm", model_output=False)
    seg = pydicom.dcmread(seg_path)
    assert seg.FrameOfReferenceUID  # derived, stable for the instance
    write_label_seg(nm, labels, tmp_path / "seg2.dcm", model_output=False)
    assert pydicom.dcmread(tmp_path / "seg2.dcm").FrameOfReferenceUID == seg.FrameOfReferenceUID
    np.testing.assert_array_equal(read_label_seg(seg, nm), labels)


# ------------------------------------------------------------------------- OHIF-style SEGs


@pytest.mark.parametrize("order", [ANT_FIRST, POST_FIRST])
@pytest.mark.parametrize("position", [True, False])
def test_reads_ohif_label_map_seg(tmp_path, phantom, order, position):
    nm_path, labels, _ = write_nm(tmp_path, phantom, order, position)
    nm = pydicom.dcmread(nm_path)
    # OHIF's default names: segment numbers decide; SEG frames in reverse NM order.
    seg = ohif_seg(nm, labels, {1: ("Segment 1", 1), 2: ("Segment 2", 2), 3: ("Segment 3", 3)}, frame_order=[1, 0])
    assert seg.file_meta.TransferSyntaxUID == RLELossless
    seg.save_as(tmp_path / "ohif.dcm", write_like_original=False)
    np.testing.assert_array_equal(read_label_seg(tmp_path / "ohif.dcm", nm_path), labels)


@pytest.mark.parametrize("order", [ANT_FIRST, POST_FIRST])
def test_reads_ohif_binary_seg_by_label_text(tmp_path, phantom, order):
    nm_path, labels, _ = write_nm(tmp_path, phantom, order)
    nm = pydicom.dcmread(nm_path)
    # Typed names in another order than our numbers: the text decides.
    seg = ohif_seg(nm, labels, {1: ("bladder", 2), 2: ("Bone metastasis", 1), 3: ("Skeleton", 3)}, label_map=False)
    seg.save_as(tmp_path / "ohif.dcm", write_like_original=False)
    assert pydicom.dcmread(tmp_path / "ohif.dcm").NumberOfFrames == 6
    np.testing.assert_array_equal(read_label_seg(tmp_path / "ohif.dcm", nm), labels)


def test_overlapping_segments_lesion_wins(tmp_path, phantom):
    nm_path, labels, _ = write_nm(tmp_path, phantom)
    nm = pydicom.dcmread(nm_path)
    seg = ohif_seg(nm, labels, {1: ("Lesion", 1), 3: ("Bone", 3)}, label_map=False)
    bone_everywhere = (labels == 3) | (labels == 1)  # bone segment painted under the lesions too
    ident = [g.SegmentIdentificationSequence[0].ReferencedSegmentNumber for g in seg.PerFrameFunctionalGroupsSequence]
    frames = [int(g.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber) - 1
              for g in seg.PerFrameFunctionalGroupsSequence]
    stack = np.stack([labels[f] == 1 if n == 1 else bone_everywhere[f] for n, f in zip(ident, frames)])
    seg.PixelData = np.packbits(stack.ravel(), bitorder="little").tobytes()
    expected = np.where(labels == 2, 0, labels)
    np.testing.assert_array_equal(read_label_seg(seg, nm), expected)


# ------------------------------------------------------------------------- bad input


def test_bad_input_raises_input_errors(tmp_path, phantom):
    nm_path, labels, _ = write_nm(tmp_path, phantom)
    nm = pydicom.dcmread(nm_path)
    seg_path = write_label_seg(nm_path, labels, tmp_path / "seg.dcm", model_output=True)

    with pytest.raises(BoneScanInputError, match="not a DICOM Segmentation") as err:
        read_label_seg(nm_path, nm_path)
    assert err.value.path == str(nm_path)

    other = write_nm(tmp_path / "other", make_phantom(12, study_id="other"))[0]
    with pytest.raises(BoneScanInputError, match="references instance") as err:
        read_label_seg(seg_path, other)
    assert err.value.path == str(seg_path) and err.value.hint

    seg = pydicom.dcmread(seg_path)
    seg.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber = 3
    with pytest.raises(BoneScanInputError, match="NM frame 3, but the image has 2"):
        read_label_seg(seg, nm)

    with pytest.raises(BoneScanInputError, match="does not match the NM image"):
        write_label_seg(nm, labels[:1], tmp_path / "bad.dcm", model_output=True)
    with pytest.raises(BoneScanInputError, match="0-3"):
        write_label_seg(nm, labels * 2, tmp_path / "bad.dcm", model_output=True)
    assert not (tmp_path / "bad.dcm").exists()

    unknown = ohif_seg(nm, labels, {1: ("Lesion", 1), 4: ("Catheter", 2)})
    unknown.save_as(tmp_path / "unknown.dcm", write_like_original=False)
    with pytest.raises(BoneScanInputError, match='segment 4 "Catheter"') as err:
        read_label_seg(tmp_path / "unknown.dcm", nm)
    assert str(tmp_path / "unknown.dcm") in str(err.value) and "Bladder" in err.value.hint

    undescribed = ohif_seg(nm, labels, {1: ("Lesion", 1), 2: ("Bladder", 2), 3: ("Bone", 3)})
    del undescribed.SegmentSequence[1]
    with pytest.raises(BoneScanInputError, match=r"pixel values \[2\]"):
        read_label_seg(undescribed, nm)


# ------------------------------------------------------------------------- SR


def result_of(nm_path, canonical, probability=0.83):
    result = measure(read_study(nm_path), canonical)
    result.update(metastasis_probability=probability, metastatic=probability >= 0.5)
    return result


@pytest.mark.parametrize("order", [ANT_FIRST, POST_FIRST])
def test_sr_round_trip_and_references(tmp_path, phantom, order):
    nm_path, labels, canonical = write_nm(tmp_path, phantom, order)
    seg_path = write_label_seg(nm_path, labels, tmp_path / "seg.dcm", model_output=True)
    result = result_of(nm_path, canonical)
    assert result["lesion_count"] == 3 and result["bstbi"] > 0
    sr_path = write_measurement_sr(nm_path, seg_path, result, tmp_path / "sr.dcm", algorithm_version="9.9")

    back = read_measurement_sr(sr_path)
    for key in ("bstbi", "bstbi_anterior", "bstbi_posterior", "metastasis_probability", "lesion_count", "metastatic",
                "lesion_area_cm2", "bladder_area_cm2", "skeleton_area_cm2"):
        assert back[key] == pytest.approx(result[key]), key
    assert back["lesions"] == result["lesions"]  # view, centroid, area, uptake ratio; in order

    sr, seg, nm = pydicom.dcmread(sr_path), pydicom.dcmread(seg_path), pydicom.dcmread(nm_path)
    evidence = {i.ReferencedSOPInstanceUID for s in sr.CurrentRequestedProcedureEvidenceSequence
                for r in s.ReferencedSeriesSequence for i in r.ReferencedSOPSequence}
    assert evidence == {nm.SOPInstanceUID, seg.SOPInstanceUID}
    # Each lesion group points at the lesion segment's SEG frame on the NM frame of its view.
    nm_frame_of = {view: order.index(view) + 1 for view in order}
    seg_frames = frame_refs(seg)
    groups = sr.ContentSequence[-1].ContentSequence
    lesion_groups = [g for g in groups if any(getattr(c, "TextValue", "").startswith("Lesion ") for c in g.ContentSequence)]
    assert len(lesion_groups) == len(result["lesions"])
    for group, lesion in zip(lesion_groups, result["lesions"]):
        image = next(c for c in group.ContentSequence
                     if c.ValueType == "IMAGE" and c.ConceptNameCodeSequence[0].CodeValue == "121214")  # Ref. Seg. Frame
        ref = image.ReferencedSOPSequence[0]
        seg_frame = int(ref.ReferencedFrameNumber)
        assert ref.ReferencedSOPInstanceUID == seg.SOPInstanceUID
        assert seg.PerFrameFunctionalGroupsSequence[seg_frame - 1].SegmentIdentificationSequence[0].ReferencedSegmentNumber == 1
        assert seg_frames[seg_frame - 1][1] == nm_frame_of[lesion["view"]]


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy not installed")
def test_sr_passes_dciodvfy_and_negative_result(tmp_path, phantom):
    nm_path, labels, canonical = write_nm(tmp_path, phantom, POST_FIRST, position=False)
    seg_path = write_label_seg(nm_path, labels, tmp_path / "seg.dcm", model_output=True)
    sr_path = write_measurement_sr(nm_path, seg_path, result_of(nm_path, canonical), tmp_path / "sr.dcm")
    errors, _ = dciodvfy_errors(sr_path)
    assert errors == []

    negative = result_of(nm_path, np.where(canonical == 1, 3, canonical).astype(np.uint8), probability=0.1)
    write_measurement_sr(pydicom.dcmread(nm_path), pydicom.dcmread(seg_path), negative, tmp_path / "neg.dcm")
    back = read_measurement_sr(tmp_path / "neg.dcm")
    assert (back["metastatic"], back["lesion_count"], back["bstbi"], back["lesions"]) == (False, 0, 0.0, [])
    assert dciodvfy_errors(tmp_path / "neg.dcm")[0] == []
