"""Label maps written back in the stored file's geometry (npz aligned with pixel_array, MONAI Label NIfTI)."""

import os
import pathlib

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file

from bonescan.errors import BoneScanInputError
from bonescan.io import (labels_to_original, read_labels_nifti, read_study, write_labels_nifti, write_labels_npz,
                         write_whole_body_nm)

ORDERS = [("anterior", "posterior"), ("posterior", "anterior")]
HOT = (600, 40)  # hot spot in the posterior frame AS STORED (seen from behind)


def nema_nm1_path():
    """The real NEMA NM1 scan from pydicom-data (anterior only, JPEG lossless)."""
    try:
        return get_testdata_file("JPEG-LL.dcm", download=False)
    except ImportError:  # pydicom 2.4 finds data plugins through pkg_resources (setuptools)
        import data_store  # the pydicom-data package itself

        return str(pathlib.Path(data_store.__file__).parent / "data" / "JPEG-LL.dcm")


def scan_with_stored_posterior_hot_spot(tmp_path, order, shape=(1024, 256), spacing=(2.4, 2.4)):
    rng = np.random.default_rng(1)
    counts = rng.poisson(2, (2,) + shape).astype(np.float32)
    r, c = HOT[0] * shape[0] // 1024, HOT[1] * shape[1] // 256
    counts[1, r:r + 3, shape[1] - 1 - c - 2:shape[1] - c] += 500  # canonical = mirrored storage
    return write_whole_body_nm(tmp_path / "wb.dcm", counts, frame_order=order, pixel_spacing=spacing)


def label_on_hot_spot(study, threshold=100):
    """Canonical label: 1 on every posterior pixel above ``threshold`` counts (the hot spot)."""
    labels = np.zeros((2, 1024, 256), np.uint8)
    labels[1][study.counts[1] > threshold] = 1
    assert labels.sum() > 0
    return labels


@pytest.mark.parametrize("order", ORDERS)
def test_labels_land_on_the_stored_hot_spot(tmp_path, order):
    path = scan_with_stored_posterior_hot_spot(tmp_path, order)
    study = read_study(path)
    original = labels_to_original(label_on_hot_spot(study), study.meta)
    pixels = pydicom.dcmread(path).pixel_array
    assert original.shape == pixels.shape and original.dtype == np.uint8
    post = order.index("posterior")
    np.testing.assert_array_equal(original[post] == 1, pixels[post] > 100)
    assert not original[1 - post].any()


def test_labels_resampled_back_to_small_matrix(tmp_path):
    path = scan_with_stored_posterior_hot_spot(tmp_path, ORDERS[0], shape=(512, 128), spacing=(4.8, 4.8))
    study = read_study(path)
    original = labels_to_original(label_on_hot_spot(study, threshold=20), study.meta)  # counts spread 4x
    pixels = pydicom.dcmread(path).pixel_array
    assert original.shape == (2, 512, 128)
    hot = pixels[1] > 100
    assert original[1][hot].all()  # every hot stored pixel is labelled ...
    assert original[1].sum() <= 3 * hot.sum()  # ... and the label stays near it


def test_single_view_file_gives_one_frame(tmp_path):
    study = read_study(nema_nm1_path())
    labels = np.zeros((2, 1024, 256), np.uint8)
    labels[0, 10:20, 30:40] = 2
    original = labels_to_original(labels, study.meta)
    assert original.shape == (1, 1024, 256)
    assert original[0, 10:20, 30:40].min() == 2 and original.sum() == 2 * 100


@pytest.mark.parametrize("order", ORDERS)
def test_write_labels_npz(tmp_path, order):
    path = scan_with_stored_posterior_hot_spot(tmp_path, order)
    study = read_study(path)
    out = write_labels_npz(tmp_path / "labels.npz", label_on_hot_spot(study), study.meta)
    labels = np.load(out)["labels"]
    pixels = pydicom.dcmread(path).pixel_array
    assert labels.dtype == np.uint8 and labels.shape == pixels.shape
    post = order.index("posterior")
    assert labels[post][pixels[post] > 100].all()
    assert sorted(os.listdir(tmp_path)) == ["labels.npz", "wb.dcm"]  # no temporary file left


@pytest.mark.parametrize("order", ORDERS)
def test_label_nifti_overlays_monai_label_image(tmp_path, order):
    path = scan_with_stored_posterior_hot_spot(tmp_path, order)
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(str(path))
    sitk.WriteImage(reader.Execute(), str(tmp_path / "image.nii.gz"))  # as MONAI Label converts it
    image = nib.load(tmp_path / "image.nii.gz")
    study = read_study(path)
    out = write_labels_nifti(tmp_path / "label.nii.gz", label_on_hot_spot(study), study.meta)
    label = nib.load(out)
    assert label.shape == image.shape == (256, 1024, 2)
    np.testing.assert_allclose(label.affine, image.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(label.dataobj) == 1, np.asarray(image.dataobj) > 100)


def test_label_nifti_matches_image_nifti_affine_for_nifti_input(tmp_path):
    path = scan_with_stored_posterior_hot_spot(tmp_path, ORDERS[0])
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(str(path))
    sitk.WriteImage(reader.Execute(), str(tmp_path / "image.nii.gz"))
    study = read_study(tmp_path / "image.nii.gz")
    out = write_labels_nifti(tmp_path / "label.nii.gz", label_on_hot_spot(study), study.meta)
    np.testing.assert_allclose(nib.load(out).affine, nib.load(tmp_path / "image.nii.gz").affine)


@pytest.mark.parametrize("order", ORDERS)
def test_read_labels_nifti_inverts_write(tmp_path, order):
    study = read_study(scan_with_stored_posterior_hot_spot(tmp_path, order))
    labels = label_on_hot_spot(study)
    labels[0, 100:120, 10:30] = 2
    out = write_labels_nifti(tmp_path / "label.nii.gz", labels, study.meta)
    np.testing.assert_array_equal(read_labels_nifti(out, study.meta), labels)


def test_read_labels_nifti_rejects_wrong_shape(tmp_path):
    study = read_study(scan_with_stored_posterior_hot_spot(tmp_path, ORDERS[0]))
    nib.save(nib.Nifti1Image(np.zeros((256, 512, 2), np.uint8), np.eye(4)), tmp_path / "other.nii.gz")
    with pytest.raises(BoneScanInputError, match="other.nii.gz.*does not match"):
        read_labels_nifti(tmp_path / "other.nii.gz", study.meta)
