"""DICOM NM reading and writing: view codes, frame order, spacing, age, the real NEMA NM1 scan, bad files."""

import pathlib
import shutil
import subprocess

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate

from bonescan.errors import BoneScanInputError
from bonescan.io import read_study, write_whole_body_nm

ORDERS = [("anterior", "posterior"), ("posterior", "anterior")]


def nema_nm1_path():
    """The real NEMA NM1 scan from pydicom-data (anterior only, JPEG lossless)."""
    try:
        return get_testdata_file("JPEG-LL.dcm", download=False)
    except ImportError:  # pydicom 2.4 finds data plugins through pkg_resources (setuptools)
        import data_store  # the pydicom-data package itself

        return str(pathlib.Path(data_store.__file__).parent / "data" / "JPEG-LL.dcm")


def phantom(shape=(1024, 256), seed=0):
    """Canonical counts with an anterior hot spot on the image left and a posterior one on the right."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(3, (2,) + shape).astype(np.float32)
    r, c = shape[0] // 10, shape[1] // 6
    counts[0, r:r + 4, c:c + 4] += 200
    counts[1, 6 * r:6 * r + 4, 4 * c:4 * c + 4] += 300
    return counts


@pytest.fixture
def nm_file(tmp_path):
    return write_whole_body_nm(tmp_path / "wb.dcm", phantom(), patient_id="P1", sex="F", age_years=67)


@pytest.fixture
def nema_nm1():
    return nema_nm1_path()


def mutate(path, change, name="variant.dcm"):
    ds = pydicom.dcmread(path)
    change(ds)
    out = path.parent / name
    ds.save_as(out)
    return out


@pytest.mark.parametrize("order", ORDERS)
def test_round_trip_both_frame_orders(tmp_path, order):
    counts = phantom()
    path = write_whole_body_nm(tmp_path / "wb.dcm", counts, frame_order=order, sex="M", age_years=71, pixel_spacing=(2.2, 2.4))
    study = read_study(path)
    np.testing.assert_array_equal(study.counts, counts)
    assert study.meta.frame_views == list(order)
    assert study.meta.view_source == "view_code" and study.meta.missing_views == []
    assert study.meta.pixel_spacing == pytest.approx((2.2, 2.4))
    assert (study.meta.sex, study.meta.age_years) == ("M", 71.0)
    assert study.meta.total_counts == pytest.approx((counts[0].sum(), counts[1].sum()))


@pytest.mark.parametrize("order", ORDERS)
def test_posterior_frame_is_stored_as_seen_from_behind(tmp_path, order):
    counts = phantom()
    ds = pydicom.dcmread(write_whole_body_nm(tmp_path / "wb.dcm", counts, frame_order=order))
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.20" and int(ds.NumberOfFrames) == 2
    post = order.index("posterior")
    np.testing.assert_array_equal(ds.pixel_array[post], counts[1][:, ::-1])
    code = ds.DetectorInformationSequence[post].ViewCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("399001007", "SCT")


def test_view_codes_found_by_meaning_text(tmp_path, nm_file):
    def change(ds):
        for item, text in zip(ds.DetectorInformationSequence, ("Anterior", "POSTERIOR view")):
            item.ViewCodeSequence[0].CodeValue = "X-1"
            item.ViewCodeSequence[0].CodeMeaning = text
        ds.DetectorVector = [2, 1]  # frame 1 made by detector 2 (posterior)
    study = read_study(mutate(nm_file, change))
    assert study.meta.frame_views == ["posterior", "anterior"]
    stored = pydicom.dcmread(nm_file).pixel_array
    np.testing.assert_array_equal(study.counts[0], stored[1])
    np.testing.assert_array_equal(study.counts[1], stored[0][:, ::-1])


@pytest.mark.parametrize("order", ORDERS)
def test_without_view_codes_falls_back_to_frame_order(tmp_path, order):
    counts = phantom()
    study = read_study(write_whole_body_nm(tmp_path / "wb.dcm", counts, frame_order=order, view_codes=False))
    assert study.meta.view_source == "frame_order"
    assert any("frame 1" in w for w in study.meta.warnings)
    first = counts[0] if order[0] == "anterior" else counts[1][:, ::-1]
    np.testing.assert_array_equal(study.counts[0], first)


def test_without_positions_reads_with_pydicom(tmp_path, nm_file):
    def change(ds):
        for item in ds.DetectorInformationSequence:
            del item.ImagePositionPatient, item.ImageOrientationPatient
    study = read_study(mutate(nm_file, change))
    np.testing.assert_array_equal(study.counts, phantom())
    assert study.meta.view_source == "view_code"
    assert np.allclose(np.abs(np.diag(study.meta.nifti_affine)), [2.4, 2.4, 1, 1])


@pytest.mark.parametrize("value", ["", None])
def test_empty_or_missing_pixel_spacing_defaults(tmp_path, nm_file, value):
    def change(ds):
        if value is None:
            del ds.PixelSpacing
        else:
            ds.PixelSpacing = value
    study = read_study(mutate(nm_file, change))
    assert study.meta.spacing_source == "default"
    assert study.meta.pixel_spacing == pytest.approx((2.4, 2.4))
    assert any("spacing" in w for w in study.meta.warnings)


def test_small_matrix_is_resampled_keeping_counts_and_field_of_view(tmp_path):
    counts = phantom((512, 128))
    study = read_study(write_whole_body_nm(tmp_path / "small.dcm", counts, pixel_spacing=(4.8, 4.8)))
    assert study.counts.shape == (2, 1024, 256)
    assert study.meta.original_shape == (2, 512, 128)
    assert study.meta.original_spacing == pytest.approx((4.8, 4.8))
    assert study.meta.pixel_spacing == pytest.approx((2.4, 2.4))
    assert study.counts.sum(axis=(1, 2)) == pytest.approx(counts.sum(axis=(1, 2)), rel=1e-5)
    row, col = np.unravel_index(np.argmax(study.counts[1]), (1024, 256))
    assert abs(row - 2 * 307) <= 6 and abs(col - 2 * 86) <= 6  # hot spot at rows 306-309, columns 84-87 of 512 x 128


@pytest.mark.parametrize("age, years", [("067Y", 67), ("018M", 1.5), ("010W", 70 / 365.25), ("005D", 5 / 365.25)])
def test_patient_age_strings(tmp_path, nm_file, age, years):
    study = read_study(mutate(nm_file, lambda ds: setattr(ds, "PatientAge", age)))
    assert study.meta.age_years == pytest.approx(years, abs=1e-3)


def test_age_from_birth_date(tmp_path, nm_file):
    def change(ds):
        ds.PatientAge, ds.PatientBirthDate, ds.StudyDate = "", "19500615", "20200616"
    assert read_study(mutate(nm_file, change)).meta.age_years == pytest.approx(70.0, abs=0.01)


def test_nema_nm1_real_scan(nema_nm1):
    study = read_study(nema_nm1)
    assert study.counts[0].sum() == 3596452 and study.counts[0].max() == 278
    assert not study.counts[1].any()
    assert study.meta.missing_views == ["posterior"] and study.present_views == [0]
    assert study.meta.view_source == "single_view" and study.meta.frame_views == ["anterior"]
    assert study.meta.pixel_spacing == pytest.approx((2.26, 2.26))
    assert study.meta.original_shape == (1, 1024, 256)


@pytest.mark.parametrize("change", [
    lambda ds: setattr(ds, "SeriesDescription", "WB POST"),
    lambda ds: setattr(ds, "ViewCodeSequence", pydicom.Sequence([pydicom.Dataset()])) or ds.ViewCodeSequence[0].update(
        {"CodeValue": "399001007", "CodingSchemeDesignator": "SCT", "CodeMeaning": "posterior projection"}),
], ids=["description", "view_code"])
def test_single_frame_posterior(tmp_path, nema_nm1, change):
    src = tmp_path / "nm1.dcm"
    shutil.copy(nema_nm1, src)
    study = read_study(mutate(src, change))
    assert study.meta.frame_views == ["posterior"] and study.meta.missing_views == ["anterior"]
    assert study.counts[1].sum() == 3596452
    np.testing.assert_array_equal(study.counts[1], pydicom.dcmread(nema_nm1).pixel_array[:, ::-1])


def test_dciodvfy_finds_no_errors(tmp_path):
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (Debian dicom3tools) not installed; `make test` installs it")
    for i, (order, codes, position) in enumerate([(ORDERS[0], True, True), (ORDERS[1], True, True), (ORDERS[0], False, False)]):
        path = write_whole_body_nm(tmp_path / f"v{i}.dcm", phantom(), frame_order=order, view_codes=codes, position=position,
                                   patient_id="P1", patient_name="Doe^Jane", sex="F", age_years=67)
        out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        report = out.stdout + out.stderr
        assert "NMImage" in report  # it recognised the IOD
        assert [line for line in report.splitlines() if "Error" in line] == []


# --- bad inputs: always BoneScanInputError naming the file -------------------------------------------

def _three_frames(ds):
    frames = np.concatenate([ds.pixel_array, ds.pixel_array[:1]])
    ds.NumberOfFrames, ds.PixelData = 3, frames.tobytes()
    del ds.DetectorInformationSequence


def _same_view(ds):
    ds.DetectorInformationSequence[1].ViewCodeSequence = ds.DetectorInformationSequence[0].ViewCodeSequence


def _bad_jpeg(ds):
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.70"
    ds.PixelData = encapsulate([b"\xff\xd8garbage" * 10, b"\xff\xd8garbage" * 10])


BAD_DICOM = {
    "ct_modality": (lambda ds: setattr(ds, "Modality", "CT"), "modality"),
    "mr_modality": (lambda ds: setattr(ds, "Modality", "MR"), "modality"),
    "no_pixel_data": (lambda ds: delattr(ds, "PixelData"), "no pixel data"),
    "three_frames": (_three_frames, "3 frames"),
    "same_view_twice": (_same_view, "both claim"),
    "all_zero": (lambda ds: setattr(ds, "PixelData", bytes(len(ds.PixelData))), "empty"),
    "bad_compressed_data": (_bad_jpeg, "cannot be decoded"),
}


@pytest.mark.parametrize("case", sorted(BAD_DICOM))
def test_bad_dicom_variants(tmp_path, nm_file, case):
    change, words = BAD_DICOM[case]
    bad = mutate(nm_file, change, name=f"bad_{case}.dcm")
    with pytest.raises(BoneScanInputError) as err:
        read_study(bad)
    assert f"bad_{case}.dcm" in str(err.value) and words in str(err.value)


def test_absurd_size(tmp_path):
    bad = write_whole_body_nm(tmp_path / "tiny.dcm", np.ones((2, 32, 32)))
    with pytest.raises(BoneScanInputError, match="tiny.dcm.*not a whole-body scan"):
        read_study(bad)


def test_truncated_file(tmp_path, nm_file):
    bad = tmp_path / "truncated.dcm"
    bad.write_bytes(nm_file.read_bytes()[: nm_file.stat().st_size // 2])
    with pytest.raises(BoneScanInputError, match="truncated.dcm.*truncated"):
        read_study(bad)


@pytest.mark.parametrize("name, content, words", [
    ("notdicom.dcm", b"hello, this is text" * 20, "not a DICOM"),
    ("scan.txt", b"text", "unsupported file type"),
])
def test_not_dicom_or_unsupported(tmp_path, name, content, words):
    bad = tmp_path / name
    bad.write_bytes(content)
    with pytest.raises(BoneScanInputError) as err:
        read_study(bad)
    assert name in str(err.value) and words in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(BoneScanInputError, match="nowhere.dcm.*not found"):
        read_study(tmp_path / "nowhere.dcm")
