"""The training recipe and loop: augmentations, loss, a tiny resumable run that publishes weights."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bonescan.labels import BONE, LESION
from bonescan.networks import N_SEG_CLASSES
from bonescan.training import recipes
from bonescan.transforms import RandFlipViewsd, RandRecountd, SumPoold


def test_recount_thins_counts_like_a_shorter_scan():
    counts = np.full((2, 64, 32), 100.0, dtype=np.float32)
    thinning = RandRecountd(keys="image", prob=1.0, keep_range=(0.3, 0.3))
    thinning.set_random_state(0)
    out = thinning({"image": counts})["image"]
    assert abs(out.mean() / 100.0 - 0.3) < 0.02
    assert abs(out.var() - 100 * 0.3 * 0.7) < 3  # binomial variance: Poisson-like noise at fewer counts


def test_flip_moves_image_and_label_together():
    image = np.zeros((2, 8, 6), np.float32)
    label = np.zeros((2, 8, 6), np.uint8)
    image[:, 2, 1] = 5
    label[:, 2, 1] = LESION
    flip = RandFlipViewsd(keys=["image", "label"], prob=1.0)
    out = flip({"image": image, "label": label})
    assert out["image"][0, 2, 4] == 5 and out["image"][1, 2, 4] == 5
    assert out["label"][0, 2, 4] == LESION and out["label"][1, 2, 4] == LESION


def test_sum_pool_keeps_total_counts():
    counts = np.random.default_rng(0).poisson(3, (2, 16, 8)).astype(np.float32)
    pooled = SumPoold(keys="image", factor=2)({"image": counts})["image"]
    assert pooled.shape == (2, 8, 4) and pooled.sum() == counts.sum()


def test_view_loss_prefers_the_right_answer():
    label = torch.full((1, 2, 32, 32), BONE, dtype=torch.long)
    label[:, :, 10:14, 10:14] = LESION
    right = torch.nn.functional.one_hot(label, N_SEG_CLASSES).permute(0, 1, 4, 2, 3).reshape(1, -1, 32, 32).float() * 20
    wrong = torch.roll(right, shifts=8, dims=-1)
    loss = recipes.ViewDiceCELoss()
    assert float(loss(right, label)) < 0.1 < float(loss(wrong, label))


def test_tiny_run_publishes_and_resumes(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import train

    common = ["--model", "segmentation", "--n-train", "3", "--n-superscan", "1", "--n-val", "2", "--val-every", "1", "--batch-size", "2",
              "--pool-dir", str(tmp_path / "pool"), "--work-dir", str(tmp_path / "work"), "--model-dir", str(tmp_path / "model"),
              "--start-from", str(tmp_path / "model")]
    assert train.main(common + ["--max-iterations", "1"]) == 0
    assert (tmp_path / "model" / "segmentation.safetensors").exists()
    record = json.loads((tmp_path / "model" / "segmentation.json").read_text())
    assert record["iteration"] == 1 and record["trained_on"] == 4  # 3 + 1 superscan
    assert train.main(common + ["--max-iterations", "2"]) == 0
    history = json.loads((tmp_path / "work" / "segmentation_history.json").read_text())
    assert [h["iteration"] for h in history] == [1, 2]  # continued, did not start over
    assert (tmp_path / "work" / "segmentation_curve.png").exists()


def test_crop_focus_marks_lesions_and_bladder_of_either_view():
    from bonescan.labels import BLADDER
    from bonescan.transforms import CropFocusd

    label = np.full((2, 8, 6), BONE, np.uint8)
    label[1, 1, 1] = LESION  # posterior only
    label[0, 6, 3] = BLADDER
    focus = CropFocusd(keys="label")({"label": label})["crop_focus"]
    assert focus.shape == (1, 8, 6) and focus[0, 1, 1] == 1 and focus[0, 6, 3] == 2 and focus.sum() == 3


def test_decision_threshold_is_calibrated_for_exactly_the_served_weights(tmp_path):
    from bonescan.analysis import Analyser
    from bonescan.calibration import calibrate, studies_from_pool
    from bonescan.decision import DECISION_THRESHOLD, youden_threshold
    from bonescan.networks import build_classifier, build_segmenter
    from bonescan.training.pool import build_phantom_pool
    from bonescan.versions import publish_weights

    assert youden_threshold(np.array([0.1, 0.4, 0.6, 0.9]), np.array([0, 0, 1, 1]))["threshold"] == 0.6
    model_dir = tmp_path / "model"
    torch.manual_seed(0)
    for kind, network in (("classification", build_classifier()), ("segmentation", build_segmenter())):
        publish_weights(network, model_dir / f"{kind}.safetensors", key_metric="key", metrics={"key": 0.5},
                        trained_on=1, validated_on=1, source="test")
    pools = [build_phantom_pool(tmp_path / name, 5, seed, workers=1, progress=False, metastatic=flag)
             for name, seed, flag in (("m", 1, True), ("n", 2, False))]
    record = calibrate(model_dir, studies_from_pool(pools[0] + pools[1]))
    assert record["n"] == 10 and record["model_versions"] == {"classification": 1, "segmentation": 1}
    assert Analyser.from_model_dir(model_dir).threshold == pytest.approx(record["threshold"])
    # New segmentation weights: the old threshold no longer applies.
    publish_weights(build_segmenter(), model_dir / "segmentation.safetensors", key_metric="key", metrics={"key": 0.6},
                    trained_on=1, validated_on=1, source="test")
    assert Analyser.from_model_dir(model_dir).threshold == DECISION_THRESHOLD
    # Too few studies of a class: nothing is written, the default stays.
    assert calibrate(model_dir, studies_from_pool(pools[0])) is None


def test_appearance_randomisation_changes_tissue_gains_smoothly_and_keeps_lesions_hot():
    from bonescan.transforms import RandAppearanced

    image = np.full((2, 64, 64), 100.0, np.float32)
    label = np.zeros((2, 64, 64), np.uint8)
    label[:, 16:48, 16:48] = BONE
    label[:, 30:34, 30:34] = LESION
    image[label == LESION] = 200.0
    neutral = dict(prob=1.0, bladder_gain=(1, 1), lesion_gain=(1, 1), field_strength=0.0, gamma=(1, 1),
                   blur_sigma=(0, 0), resample_prob=0.0, display_prob=0.0)
    transform = RandAppearanced(soft_gain=(2, 2), **neutral)
    transform.set_random_state(0)
    out = transform({"image": image, "label": label})["image"]
    assert out.shape == image.shape and np.all(out == np.rint(out))
    assert out[0, 2, 2] == 200.0  # soft tissue far from bone: doubled
    assert out[0, 24, 24] == 100.0  # inside bone, away from edges: unchanged
    assert 100.0 < out[0, 16, 32] < 200.0  # at the bone edge: in between, no step that betrays the label
    assert out[0, 32, 32] == 200.0  # the lesion keeps its uptake relative to bone
    weaker = RandAppearanced(soft_gain=(1, 1), **{**neutral, "lesion_gain": (0.85, 0.85)})
    weaker.set_random_state(0)
    fainter = weaker({"image": image, "label": label})["image"][0, 32, 32]
    assert 170.0 <= fainter <= 180.0  # about 0.85 x 200 at the centre of a 4-pixel lesion: still above bone


def test_a_new_run_starts_from_the_served_weights_and_never_writes_over_them(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import train

    from tests.conftest import publish_untrained_weights

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    publish_untrained_weights(shipped)
    before = (shipped / "segmentation.safetensors").read_bytes()
    assert train.main(["--model", "segmentation", "--n-train", "2", "--n-superscan", "0", "--n-val", "2", "--val-every", "1",
                       "--batch-size", "2", "--max-iterations", "1", "--pool-dir", str(tmp_path / "pool"),
                       "--work-dir", str(tmp_path / "work"), "--model-dir", str(shipped / "local"),
                       "--start-from", str(shipped)]) == 0
    record = json.loads((shipped / "local" / "segmentation.json").read_text())
    assert record["started_from"].startswith(str(shipped / "segmentation.safetensors"))
    assert (shipped / "segmentation.safetensors").read_bytes() == before  # the shipped file is untouched
