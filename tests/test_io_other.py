"""NIfTI (MONAI Label layout) and PNG/JPEG pair reading, and their bad inputs."""

import gzip
import json

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from bonescan.errors import BoneScanInputError
from bonescan.io import read_study, write_whole_body_nm
from tests.conftest import monai_label_nifti, to_8bit


def phantom(seed=0):
    """Canonical counts: body off-centre to the image left, hot spots that differ between views."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(2, (2, 1024, 256)).astype(np.float32)
    counts[:, 80:900, 40:150] += 20  # off-centre body: makes the left-right mirror obvious
    counts[0, 100:104, 50:54] += 200
    counts[1, 600:604, 120:124] += 300
    return counts


# --- NIfTI ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("position", [True, False])
def test_nifti_from_monai_label_conversion(tmp_path, position):
    counts = phantom()
    dcm = write_whole_body_nm(tmp_path / "wb.dcm", counts, pixel_spacing=(2.2, 2.4), position=position)
    nii = monai_label_nifti(dcm, tmp_path / "wb.nii.gz")
    assert nib.load(nii).shape == (256, 1024, 2)  # (columns, rows, frames)
    study = read_study(nii)
    np.testing.assert_array_equal(study.counts, counts)
    assert study.meta.view_source == "nifti_layout"
    assert study.meta.pixel_spacing == pytest.approx((2.2, 2.4))
    assert study.meta.frame_views == ["anterior", "posterior"]


def test_nifti_sidecar_gives_frame_order(tmp_path):
    counts = phantom()
    dcm = write_whole_body_nm(tmp_path / "wb.dcm", counts, frame_order=("posterior", "anterior"))
    nii = monai_label_nifti(dcm, tmp_path / "wb.nii.gz")
    (tmp_path / "wb.json").write_text(json.dumps({"frame_views": ["posterior", "anterior"]}))
    study = read_study(nii)
    np.testing.assert_array_equal(study.counts, counts)
    assert study.meta.frame_views == ["posterior", "anterior"]


def test_nifti_without_sidecar_warns_frame_order(tmp_path):
    dcm = write_whole_body_nm(tmp_path / "wb.dcm", phantom())
    study = read_study(monai_label_nifti(dcm, tmp_path / "wb.nii"))
    assert any("no view information" in w for w in study.meta.warnings)


def test_nifti_frames_first_array_is_accepted(tmp_path):
    counts = phantom()
    stored = np.stack([counts[0], counts[1][:, ::-1]])
    nib.save(nib.Nifti1Image(stored, np.diag([2.0, 2.3, 2.4, 1.0])), tmp_path / "ff.nii.gz")
    study = read_study(tmp_path / "ff.nii.gz")
    np.testing.assert_array_equal(study.counts, counts)
    assert study.meta.pixel_spacing == pytest.approx((2.3, 2.4))


def _nifti(tmp_path, name, data):
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize("name, data, words", [
    ("nan.nii.gz", np.where(np.arange(256 * 1024 * 2).reshape(256, 1024, 2) == 7, np.nan, 1.0), "NaN"),
    ("inf.nii.gz", np.where(np.arange(256 * 1024 * 2).reshape(256, 1024, 2) == 7, np.inf, 1.0), "NaN or infinite"),
    ("volume.nii.gz", np.ones((256, 256, 40), np.float32), "many slices"),
    ("zeros.nii.gz", np.zeros((256, 1024, 2), np.float32), "empty"),
    ("tiny.nii.gz", np.ones((20, 30, 2), np.float32), "not a whole-body scan"),
])
def test_bad_nifti(tmp_path, name, data, words):
    with pytest.raises(BoneScanInputError) as err:
        read_study(_nifti(tmp_path, name, data))
    assert name in str(err.value) and words in str(err.value)


def test_truncated_and_fake_nifti(tmp_path):
    good = _nifti(tmp_path, "good.nii.gz", np.ones((256, 1024, 2), np.float32))
    (tmp_path / "cut.nii.gz").write_bytes(good.read_bytes()[:2000])
    (tmp_path / "text.nii").write_text("not a nifti")
    (tmp_path / "gztext.nii.gz").write_bytes(gzip.compress(b"not a nifti"))
    for name in ("cut.nii.gz", "text.nii", "gztext.nii.gz"):
        with pytest.raises(BoneScanInputError) as err:
            read_study(tmp_path / name)
        assert name in str(err.value) and "NIfTI" in str(err.value)


# --- PNG / JPEG -------------------------------------------------------------------------------------

@pytest.mark.parametrize("ant_tag, post_tag", [("_ant", "_post"), ("_anterior", "_posterior"), ("_A", "_P"),
                                               ("-ANT", "-POST"), ("_Ant", "_Post")])
@pytest.mark.parametrize("given", ["anterior", "posterior"])
def test_png_pair_from_either_file(tmp_path, ant_tag, post_tag, given):
    ant, post = to_8bit(phantom())
    Image.fromarray(ant).save(tmp_path / f"case7{ant_tag}.png")
    Image.fromarray(post).save(tmp_path / f"case7{post_tag}.png")
    study = read_study(tmp_path / f"case7{ant_tag if given == 'anterior' else post_tag}.png")
    np.testing.assert_array_equal(study.counts[0], ant)
    np.testing.assert_array_equal(study.counts[1], post[:, ::-1])
    assert study.meta.view_source == "file_name" and study.meta.posterior_flipped
    assert any("not counts" in w for w in study.meta.warnings)
    assert study.meta.total_counts == pytest.approx((ant.sum(), post.sum()))


def test_rgb_png_pair_is_converted(tmp_path):
    ant, post = to_8bit(phantom())
    Image.fromarray(np.repeat(ant[..., None], 3, axis=2)).save(tmp_path / "c_ant.png")
    Image.fromarray(np.repeat(post[..., None], 3, axis=2)).save(tmp_path / "c_post.png")
    study = read_study(tmp_path / "c_ant.png")
    np.testing.assert_array_equal(study.counts[0], ant)
    assert any("RGB" in w for w in study.meta.warnings)


def test_jpeg_pair(tmp_path):
    ant, post = to_8bit(phantom())
    Image.fromarray(ant).save(tmp_path / "j_ant.jpg", quality=95)
    Image.fromarray(post).save(tmp_path / "j_post.jpeg", quality=95)
    study = read_study(tmp_path / "j_post.jpeg")
    assert np.abs(study.counts[0] - ant).mean() < 3
    assert np.abs(study.counts[1] - post[:, ::-1]).mean() < 3
    row, col = np.unravel_index(np.argmax(study.counts[1]), study.counts[1].shape)
    assert 598 <= row <= 606 and 118 <= col <= 126  # the posterior hot spot, back in anterior orientation


def test_side_by_side_png(tmp_path):
    ant, post = to_8bit(phantom())
    Image.fromarray(np.hstack([ant, post])).save(tmp_path / "both.png")
    study = read_study(tmp_path / "both.png")
    np.testing.assert_array_equal(study.counts[0], ant)
    np.testing.assert_array_equal(study.counts[1], post[:, ::-1])
    assert study.meta.view_source == "side_by_side" and study.meta.original_shape == (2, 1024, 256)


def test_posterior_already_mirrored_is_not_flipped_again(tmp_path):
    ant, post = to_8bit(phantom())
    Image.fromarray(ant).save(tmp_path / "m_ant.png")
    Image.fromarray(np.ascontiguousarray(post[:, ::-1])).save(tmp_path / "m_post.png")  # exported pre-flipped
    study = read_study(tmp_path / "m_ant.png")
    assert not study.meta.posterior_flipped
    np.testing.assert_array_equal(study.counts[1], post[:, ::-1])
    assert any("already mirrored" in w for w in study.meta.warnings)


def test_half_size_png_pair_is_resampled(tmp_path):
    ant, post = to_8bit(phantom())
    Image.fromarray(ant[::2, ::2]).save(tmp_path / "h_ant.png")
    Image.fromarray(post[::2, ::2]).save(tmp_path / "h_post.png")
    study = read_study(tmp_path / "h_ant.png")
    assert study.meta.original_shape == (2, 512, 128) and study.meta.pixel_spacing == pytest.approx((2.4, 2.4))
    assert study.counts[0].sum() == pytest.approx(ant[::2, ::2].sum(), rel=1e-5)


def test_bad_images(tmp_path):
    ant, post = to_8bit(phantom())
    Image.fromarray(ant).save(tmp_path / "lonely_ant.png")
    Image.fromarray(ant).save(tmp_path / "untagged.png")
    (tmp_path / "fake_ant.png").write_text("not an image")
    Image.fromarray(post).save(tmp_path / "fake_post.png")
    Image.fromarray(np.zeros_like(ant)).save(tmp_path / "zero_ant.png")
    Image.fromarray(np.zeros_like(post)).save(tmp_path / "zero_post.png")
    Image.fromarray(ant[:40, :30]).save(tmp_path / "small_ant.png")
    Image.fromarray(post[:40, :30]).save(tmp_path / "small_post.png")
    good = tmp_path / "cut_ant.png"
    Image.fromarray(ant).save(good)
    Image.fromarray(post).save(tmp_path / "cut_post.png")
    good.write_bytes(good.read_bytes()[:300])
    cases = {"lonely_ant.png": "posterior image of this pair is missing", "untagged.png": "does not say which view",
             "fake_ant.png": "not a readable image", "zero_post.png": "empty", "small_ant.png": "not a whole-body scan",
             "cut_ant.png": "not a readable image"}
    for name, words in cases.items():
        with pytest.raises(BoneScanInputError) as err:
            read_study(tmp_path / name)
        assert name in str(err.value) and words in str(err.value), str(err.value)
