"""Background scoring jobs (``/scoring/<method>``) that cache what the active-learning strategies read.

MONAI Label runs them as background tasks (its own process) at server start, after each training
and after each ``/activelearning`` call (``MONAI_LABEL_AUTO_UPDATE_SCORING``). Each job is
incremental: a study already scored by the current weights is skipped, so a refresh with
unchanged weights costs only the job's start-up. Without weights a job logs that and does
nothing; the strategies then fall back to random.

- ``classifier_scores`` (every study, labelled ones too: diversity measures distance to them):
  one pass of the case analysis per study, ``bonescan.embeddings.case_scores``: classifier
  probability, lesion evidence, the case decision score ``metastasis_probability`` and the
  classifier embedding. About 0.3 s per study on 2 CPU cores.
- ``epistemic`` (unlabelled studies only): Monte-Carlo dropout disagreement of the segmenter,
  ``bonescan.embeddings.mc_dropout_uncertainty``. About 1 s per study on 2 CPU cores.
"""

from __future__ import annotations

import logging
import time
from typing import Dict, List, Optional

from monailabel.interfaces.tasks.scoring import ScoringMethod

from bonescan.analysis import Analyser, load_network
from bonescan.decision import DECISION_THRESHOLD, decision_threshold
from bonescan.embeddings import MC_DROPOUT, MC_PASSES, MC_TOP_PIXELS, case_scores, mc_dropout_uncertainty
from bonescan.errors import BoneScanInputError
from bonescan.io import read_study
from bonescan.weights import WeightsError
from lib.scoring.cache import CLASSIFIER_KEY, EMBEDDINGS_FILE, EPISTEMIC_KEY, EmbeddingCache, cache_dir, model_stamp

logger = logging.getLogger(__name__)


def _channels_last(network):
    import torch

    return network.to(memory_format=torch.channels_last)


def _describe(error: Exception) -> str:
    return str(error) if isinstance(error, BoneScanInputError) else f"{type(error).__name__}: {error}"


def _log_failure(job: str, image_id: str, error: Exception) -> None:
    if isinstance(error, BoneScanInputError):
        logger.warning(f"{job}: {image_id} not scored: {error}")
    else:
        logger.exception(f"{job}: {image_id} not scored (unexpected error)")


def _limit(image_ids: List[str], request) -> List[str]:
    max_samples = int(request.get("max_samples", 0) or 0)
    return image_ids[:max_samples] if max_samples > 0 else image_ids



def _weights_unusable(job: str, error: Exception) -> Dict:
    """A damaged weights file: nothing is scored (strategies fall back to random), the server goes on."""
    message = f"{job}: nothing scored, the weights cannot be used: {error}"
    logger.error(message)
    return {"skipped": message}

class ClassifierScoring(ScoringMethod):
    """Case decision score, classifier probability and embedding of every study (one pass each)."""

    def __init__(self, model_dir, cache_fallback_dir=None, threshold: Optional[float] = None):
        super().__init__(
            "Metastasis probability (case decision score), classifier probability and classifier embedding "
            "of every study, for the 'uncertainty' and 'diversity' strategies"
        )
        self.model_dir = model_dir
        self.cache_fallback_dir = cache_fallback_dir or model_dir
        self.threshold = threshold

    def __call__(self, request, datastore) -> Dict:
        start = time.time()
        stamp = model_stamp(self.model_dir, ["classification"])
        if stamp is None:
            message = (f"classifier_scores: no classification weights in {self.model_dir}; "
                       "nothing scored (strategies fall back to random)")
            logger.warning(message)
            return {"skipped": message}
        segmentation_stamp = model_stamp(self.model_dir, ["segmentation"])
        if segmentation_stamp:
            stamp = f"{stamp};{segmentation_stamp}"
        cache = EmbeddingCache(cache_dir(datastore, self.cache_fallback_dir) / EMBEDDINGS_FILE)
        cached_stamp, vectors = cache.load()
        vectors = dict(vectors) if cached_stamp == stamp else {}

        all_ids = datastore.list_images()
        unlabelled = set(datastore.get_unlabeled_images())
        todo = []
        for image_id in sorted(all_ids, key=lambda i: (i not in unlabelled, i)):  # candidates first
            info = datastore.get_image_info(image_id).get(CLASSIFIER_KEY, {})
            if request.get("force") or info.get("model") != stamp or (image_id not in vectors and not info.get("error")):
                todo.append(image_id)
        todo = _limit(todo, request)
        summary = {"total": len(all_ids), "executed": 0, "skipped": len(all_ids) - len(todo), "errors": 0}
        if todo:
            try:
                classifier = _channels_last(load_network("classification", self.model_dir))
                segmenter = _channels_last(load_network("segmentation", self.model_dir)) if segmentation_stamp else None
            except WeightsError as error:
                return _weights_unusable("classifier_scores", error)
            # the threshold calibrated for the served weights (the strategies rank against it)
            threshold = self.threshold if self.threshold is not None else decision_threshold(self.model_dir, DECISION_THRESHOLD)[0]
            analyser = Analyser(classifier, segmenter, threshold=threshold)
            for image_id in todo:
                entry = {"model": stamp, "ts": int(time.time()), "threshold": threshold}
                try:
                    scores = case_scores(analyser, read_study(datastore.get_image_uri(image_id)))
                    vectors[image_id] = scores.pop("embedding")
                    entry.update(scores)
                    summary["executed"] += 1
                except Exception as error:  # one unreadable study must not stop the job; it is logged and marked
                    vectors.pop(image_id, None)
                    entry["error"] = _describe(error)
                    summary["errors"] += 1
                    _log_failure("classifier_scores", image_id, error)
                datastore.update_image_info(image_id, {CLASSIFIER_KEY: entry})
        known = set(all_ids)
        vectors = {k: v for k, v in vectors.items() if k in known}
        if todo or cached_stamp != stamp:
            cache.save(stamp, vectors)
        summary["seconds"] = round(time.time() - start, 2)
        logger.info(f"classifier_scores: {summary}")
        return summary


class EpistemicScoring(ScoringMethod):
    """Monte-Carlo dropout disagreement of the segmenter on every unlabelled study."""

    def __init__(self, model_dir, passes: int = MC_PASSES, dropout: float = MC_DROPOUT, top_pixels: int = MC_TOP_PIXELS):
        super().__init__(
            f"Epistemic uncertainty of the lesion segmentation: BALD over {passes} Monte-Carlo dropout passes "
            f"(dropout2d p={dropout} on the decoder), mean of the {top_pixels} most uncertain pixels"
        )
        self.model_dir = model_dir
        self.passes, self.dropout, self.top_pixels = passes, dropout, top_pixels

    def __call__(self, request, datastore) -> Dict:
        start = time.time()
        stamp = model_stamp(self.model_dir, ["segmentation"])
        if stamp is None:
            message = f"epistemic: no segmentation weights in {self.model_dir}; nothing scored (strategies fall back to random)"
            logger.warning(message)
            return {"skipped": message}
        passes = int(request.get("passes", self.passes))
        dropout = float(request.get("dropout", self.dropout))
        settings = f"{stamp};passes={passes};p={dropout};top={self.top_pixels}"
        unlabelled = sorted(datastore.get_unlabeled_images())
        todo = [
            i for i in unlabelled
            if request.get("force") or datastore.get_image_info(i).get(EPISTEMIC_KEY, {}).get("model") != settings
        ]
        todo = _limit(todo, request)
        summary = {"total": len(unlabelled), "executed": 0, "skipped": len(unlabelled) - len(todo), "errors": 0}
        if todo:
            try:
                segmenter = _channels_last(load_network("segmentation", self.model_dir))
            except WeightsError as error:
                return _weights_unusable("epistemic", error)
            for image_id in todo:
                entry = {"model": settings, "ts": int(time.time())}
                try:
                    entry.update(mc_dropout_uncertainty(segmenter, read_study(datastore.get_image_uri(image_id)),
                                                        passes=passes, p=dropout, top_pixels=self.top_pixels))
                    summary["executed"] += 1
                except Exception as error:  # one unreadable study must not stop the job; it is logged and marked
                    entry["error"] = _describe(error)
                    summary["errors"] += 1
                    _log_failure("epistemic", image_id, error)
                datastore.update_image_info(image_id, {EPISTEMIC_KEY: entry})
        summary["seconds"] = round(time.time() - start, 2)
        logger.info(f"epistemic: {summary}")
        return summary
