"""Per-study scores for active learning, computed by the trained networks.

Shared by the server's scoring jobs (``apps/bonescan/lib/scoring``) and
``scripts/simulate_active_learning.py``, so that the simulation measures exactly what the server does.

- ``case_scores``: one pass of the case-level analysis. The classifier's probability, its
  global-pooled penultimate features (the *embedding*, 512 floats, captured by a forward pre-hook
  on ``fc``: no second pass), and, when the segmenter is given, the lesion evidence and the case
  decision score ``metastasis_probability = decision_score(classifier, lesion evidence)`` exactly as
  ``bonescan.analysis`` decides a case.
- ``mc_dropout_uncertainty``: epistemic uncertainty of the segmenter by Monte-Carlo dropout.

Why MC dropout this way (our FlexibleUNet has no dropout layers):

- Dropout is *injected at inference only*: ``dropout2d`` (whole feature maps, p = 0.15) on the
  outputs of the decoder blocks, through forward hooks that exist only inside the scoring call.
  Training and serving are untouched (the scoring jobs load a network object of their own: hooks on
  a network that serves requests at the same time would drop features there too).
  The last, full-resolution 16-channel block is left alone:
  dropping one of 16 maps there mostly adds noise at the edge of every structure, not model doubt.
- The encoder has no dropout, so it runs **once**; only decoder + head run ``passes`` times,
  batched, in bf16 on CPU (channels_last). At full resolution (lesions are 2-10 pixels) this costs
  about one plain segmentation plus ``passes`` decoders, instead of ``passes`` whole networks.
- Per pixel we take the lesion probability ``p_k`` of each pass and compute the BALD mutual
  information ``H(mean p) - mean H(p_k)`` (binary entropies): high only where the passes
  *disagree*, not where every pass says 50 % (that ambiguity is aleatoric, e.g. noisy low-count
  pixels, and labelling the study would not remove it). Lesions are small (0.1-1 % of the
  body), so a body-wide mean would be dominated by body size and millions of confident
  background pixels; the study's score is the mean over its ``top_pixels`` most uncertain pixels
  (about a few lesions' area). The body-wide mean and the mean per-pixel variance are kept too.
"""

from __future__ import annotations

import contextlib
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from bonescan.networks import resolve_bf16, split_view_logits
from bonescan.preprocess import normalise_counts
from bonescan.study import Study

MC_PASSES = 6
MC_DROPOUT = 0.15
MC_TOP_PIXELS = 1024
EPS = 1e-6


def _device(network: torch.nn.Module) -> torch.device:
    return next(network.parameters()).device


def _autocast(device: torch.device, enabled: Optional[bool]):
    """bf16 autocast where the hardware runs it natively (``enabled=None``), or as asked."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=resolve_bf16(enabled, device.type))


def _tensor(x: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x))[None].to(device).contiguous(memory_format=torch.channels_last)


@contextlib.contextmanager
def capture_embedding(classifier: torch.nn.Module):
    """Collect the global-pooled features entering the classifier's ``fc`` during the block."""
    captured: List[np.ndarray] = []

    def hook(_module, inputs):
        captured.append(inputs[0].detach().float().cpu().numpy().copy())

    handle = classifier.fc.register_forward_pre_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


def classify_with_embedding(classifier: torch.nn.Module, study: Study, bf16: Optional[bool] = None) -> Tuple[float, np.ndarray]:
    """Metastasis probability of the classifier and its embedding (float32, 512), in one pass."""
    from bonescan.analysis import classifier_probability

    classifier.eval()
    with capture_embedding(classifier) as captured:
        probability = classifier_probability(classifier, study, resolve_bf16(bf16, _device(classifier).type))
    return probability, captured[0][0].astype(np.float32)


def case_scores(analyser, study: Study) -> Dict:
    """Classifier probability + embedding, and the case decision score when the analyser has a segmenter.

    ``analyser`` is a ``bonescan.analysis.Analyser`` (its ``segmenter`` may be None: then the
    decision score is the classifier's probability alone, and ``lesion_evidence`` is None).
    """
    from bonescan.analysis import decision_score
    from bonescan.measure import measure

    probability, embedding = classify_with_embedding(analyser.classifier, study, analyser.bf16)
    lesion_evidence: Optional[float] = None
    if getattr(analyser, "segmenter", None) is not None:
        labels, lesion_probability = analyser.segment(study)
        lesion_evidence = float(measure(study, labels, lesion_probability)["lesion_evidence"])
    score = probability if lesion_evidence is None else decision_score(probability, lesion_evidence)
    return {
        "classifier_probability": round(probability, 5),
        "lesion_evidence": None if lesion_evidence is None else round(lesion_evidence, 5),
        "metastasis_probability": round(score, 5),
        "embedding": embedding,
    }


@contextlib.contextmanager
def decoder_dropout(segmenter: torch.nn.Module, p: float = MC_DROPOUT):
    """Forward hooks applying ``dropout2d(training=True)`` to the decoder blocks' outputs (all but the last)."""
    blocks = list(segmenter.decoder.blocks)
    handles = [
        block.register_forward_hook(lambda _m, _i, output: F.dropout2d(output, p=p, training=True))
        for block in blocks[:-1]
    ]
    try:
        yield len(handles)
    finally:
        for handle in handles:
            handle.remove()


def _binary_entropy(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(EPS, 1 - EPS)
    return -(p * p.log() + (1 - p) * (1 - p).log())


def mc_dropout_uncertainty(
    segmenter: torch.nn.Module,
    study: Study,
    passes: int = MC_PASSES,
    p: float = MC_DROPOUT,
    top_pixels: int = MC_TOP_PIXELS,
    bf16: Optional[bool] = None,
    seed: int = 0,
    chunk: int = 4,
) -> Dict:
    """Epistemic uncertainty of the lesion segmentation of one study (see the module docstring).

    Returns ``score`` (mean BALD over the ``top_pixels`` most uncertain pixels), ``mean_bald``
    (over the acquired views), ``mean_variance`` (of the lesion probability) and ``passes``.
    Deterministic for given weights, study and ``seed``.
    """
    from bonescan.analysis import LESION_CHANNEL

    passes = max(2, int(passes))
    device = _device(segmenter)
    segmenter.eval()
    x = _tensor(normalise_counts(study.counts), device)
    sum_p = sum_p2 = sum_h = None
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.inference_mode():
        torch.manual_seed(seed)
        with _autocast(device, bf16):
            features = segmenter.encoder(x)
        done = 0
        with decoder_dropout(segmenter, p):
            while done < passes:
                n = min(chunk, passes - done)
                batch = [f.expand(n, *f.shape[1:]).contiguous(memory_format=torch.channels_last) for f in features]
                with _autocast(device, bf16):
                    logits = segmenter.segmentation_head(segmenter.decoder(batch, segmenter.skip_connect))
                lesion = torch.softmax(split_view_logits(logits.float()), dim=2)[:, :, LESION_CHANNEL]  # (n, views, H, W)
                s, s2, h = lesion.sum(0), (lesion * lesion).sum(0), _binary_entropy(lesion).sum(0)
                sum_p = s if sum_p is None else sum_p + s
                sum_p2 = s2 if sum_p2 is None else sum_p2 + s2
                sum_h = h if sum_h is None else sum_h + h
                done += n
    mean_p = sum_p / passes
    variance = (sum_p2 / passes - mean_p * mean_p).clamp_min(0)
    bald = (_binary_entropy(mean_p) - sum_h / passes).clamp_min(0)
    views = study.present_views or [0, 1]
    bald_views = bald[views].flatten().cpu()
    k = max(1, min(int(top_pixels), bald_views.numel()))
    return {
        "score": float(bald_views.topk(k).values.mean()),
        "mean_bald": float(bald_views.mean()),
        "mean_variance": float(variance[views].mean()),
        "passes": passes,
        "dropout": p,
        "top_pixels": k,
    }
