"""Monte-Carlo dropout (bonescan.embeddings) on a toy segmenter whose answers are known by hand.

The toy has FlexibleUNet's parts (encoder, decoder with blocks, segmentation head): its first
decoder block passes one feature map of ones, and the head turns it into a lesion logit of ln 3
on every pixel of both views (other classes 0), so a pass that keeps the map says p = 3/(3+3) = 1/2
and a pass where dropout removed it says p = 1/(1+3) = 1/4.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from bonescan.embeddings import decoder_dropout, mc_dropout_uncertainty
from bonescan.networks import N_SEG_CLASSES
from bonescan.study import Study, StudyMeta

SIZE = 4  # the toy's output is 4 x 4 pixels per view


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Identity(), nn.Identity()])
        self.calls = 0

    def forward(self, features, skip_connect):
        self.calls += 1
        x = features[0]
        for block in self.blocks:
            x = block(x)
        return x


class Head(nn.Module):
    def forward(self, x):
        logits = torch.zeros(x.shape[0], 2 * N_SEG_CLASSES, SIZE, SIZE)
        for view in range(2):
            logits[:, view * N_SEG_CLASSES + 1] = x[:, 0] * math.log(3.0)  # class 1: lesion
        return logits


class ToySegmenter(nn.Module):
    skip_connect = 0

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))  # a device to run on
        self.decoder, self.segmentation_head = Decoder(), Head()
        self.encoder_calls = 0

    def encoder(self, x):
        self.encoder_calls += 1
        return [torch.ones(x.shape[0], 1, SIZE, SIZE)]


def study() -> Study:
    return Study(counts=np.zeros((2, 1024, 256), np.float32), meta=StudyMeta(source_file="memory"))


def entropy(p: float) -> float:
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def test_passes_that_disagree_give_the_bald_score_worked_out_by_hand(monkeypatch):
    def every_other_pass_dropped(output, p, training):
        keep = torch.ones(output.shape[0], 1, 1, 1)
        keep[1::2] = 0
        return output * keep

    monkeypatch.setattr(torch.nn.functional, "dropout2d", every_other_pass_dropped)
    result = mc_dropout_uncertainty(ToySegmenter(), study(), passes=2, bf16=False)
    # p = 1/2 and 1/4 on every pixel: mean 3/8; BALD = H(3/8) - (H(1/2) + H(1/4)) / 2 = 0.0338...;
    # variance = (1/4 + 1/16) / 2 - (3/8)^2 = 1/64
    bald = entropy(3 / 8) - (entropy(1 / 2) + entropy(1 / 4)) / 2
    assert bald == pytest.approx(0.033822, abs=1e-6)
    assert result["score"] == pytest.approx(bald, abs=1e-5) and result["mean_bald"] == pytest.approx(bald, abs=1e-5)
    assert result["mean_variance"] == pytest.approx(1 / 64, abs=1e-6)
    assert result["top_pixels"] == 2 * SIZE * SIZE and result["passes"] == 2


def test_passes_that_agree_score_zero_even_at_fifty_percent():
    # p = 0: no map is dropped, every pass says 1/2: aleatoric ambiguity, no epistemic uncertainty
    kept = mc_dropout_uncertainty(ToySegmenter(), study(), passes=4, p=0.0, bf16=False)
    assert kept["score"] == pytest.approx(0.0, abs=1e-6) and kept["mean_variance"] == pytest.approx(0.0, abs=1e-7)
    # p = 1: the map is always dropped, every pass says 1/4
    dropped = mc_dropout_uncertainty(ToySegmenter(), study(), passes=4, p=1.0, bf16=False)
    assert dropped["score"] == pytest.approx(0.0, abs=1e-6)


def test_the_encoder_runs_once_and_the_decoder_once_per_chunk():
    segmenter = ToySegmenter()
    result = mc_dropout_uncertainty(segmenter, study(), passes=6, chunk=4, bf16=False)
    assert (segmenter.encoder_calls, segmenter.decoder.calls, result["passes"]) == (1, 2, 6)
    again = mc_dropout_uncertainty(ToySegmenter(), study(), passes=6, chunk=4, bf16=False)
    assert again == result  # the same seed draws the same dropout masks
    assert mc_dropout_uncertainty(ToySegmenter(), study(), passes=1, bf16=False)["passes"] == 2  # at least two


def test_dropout_is_on_every_decoder_block_but_the_last_and_only_inside_the_block():
    segmenter = ToySegmenter()
    x = torch.ones(1, 1, SIZE, SIZE)
    with decoder_dropout(segmenter, p=1.0) as hooked:
        assert hooked == 1
        assert segmenter.decoder.blocks[0](x).sum() == 0  # dropped
        assert segmenter.decoder.blocks[1](x).sum() == SIZE * SIZE  # the last block is left alone
    assert segmenter.decoder.blocks[0](x).sum() == SIZE * SIZE  # hooks gone: serving is untouched
