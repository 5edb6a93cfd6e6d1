"""Active-learning strategies that answer from cached scores only (no network runs in the request).

The scores come from the background jobs of ``lib.scoring`` (``/scoring/classifier_scores``,
``/scoring/epistemic``). A strategy reads image info and the embedding file, chooses with the pure
functions of ``bonescan.selection`` (the ones the simulation uses) and answers in
milliseconds. When no study has a score yet (no weights, job not run yet) it falls back to
MONAI Label's random strategy and says so in the answer (``fallback``, ``note``).

Studies this strategy proposed during the last ``recent_seconds`` (MONAI Label records
``strategy.<name>.ts`` in image info on every answer) are not proposed again while others remain,
so two annotators asking one after the other get different studies; for ``diversity`` they also
count as being labelled already, which makes successive answers a greedy batch, as in the simulation.

Which third strategy, and why ``diversity``: a bone-scan archive holds many near-identical
studies (normal scans of similar patients, repeat scans of the same patient). Uncertainty and
epistemic scores are computed one study at a time, so they propose the same kind of borderline
study again and again; core-set diversity over the classifier's embedding (farthest-first in
cosine distance from everything labelled) spends each label on something the models have not
seen yet, and it needs no calibrated probability, which a model trained on 5-20 studies lacks.
``uncertain_pool`` (request or constructor, 0 = off) restricts it to the N most uncertain
studies, combining both ideas.
"""

from __future__ import annotations

import logging
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.tasks.activelearning.random import Random

from bonescan.decision import DECISION_THRESHOLD
from bonescan.selection import cosine_distances, pick_diverse, pick_highest, pick_uncertain, rank_uncertain
from lib.scoring.cache import CLASSIFIER_KEY, EMBEDDINGS_FILE, EPISTEMIC_KEY, EmbeddingCache, cache_dir

logger = logging.getLogger(__name__)

RECENT_SECONDS = 3600


class CachedScoreStrategy(Strategy):
    name = "cached"

    def __init__(self, description: str, recent_seconds: int = RECENT_SECONDS):
        super().__init__(description)
        self.recent_seconds = recent_seconds

    def _unlabelled(self, request, datastore) -> Tuple[List[str], Dict[str, Dict]]:
        images = datastore.get_unlabeled_images(request.get("label_tag"), request.get("labels"))
        return images, {image_id: datastore.get_image_info(image_id) for image_id in images}

    def _recent(self, request, info: Dict, now: float) -> bool:
        strategy = request.get("strategy", self.name)
        served = info.get("strategy", {}).get(strategy, {}).get("ts", 0)
        return now - served < self.recent_seconds

    def _fresh(self, request, ids, infos, now) -> List[str]:
        """Ids not proposed recently; all of them when every one was (nothing else is left)."""
        fresh = [i for i in ids if not self._recent(request, infos[i], now)]
        return fresh or list(ids)

    def _fallback(self, request, datastore, note: str) -> Optional[Dict]:
        logger.info(f"{self.name}: {note}; falling back to random")
        result = Random()({**request, "strategy": request.get("strategy", self.name)}, datastore)
        if result:
            result.update({"fallback": "random", "note": note})
        return result


class Uncertainty(CachedScoreStrategy):
    """The unlabelled study whose metastasis probability is closest to the decision threshold."""

    name = "uncertainty"

    def __init__(self, threshold: float = DECISION_THRESHOLD, recent_seconds: int = RECENT_SECONDS):
        super().__init__(
            "Study whose metastasis probability (the case decision score) is closest to the decision threshold",
            recent_seconds,
        )
        self.threshold = threshold

    def __call__(self, request, datastore):
        images, infos = self._unlabelled(request, datastore)
        if not images:
            return None
        probabilities = {
            i: infos[i][CLASSIFIER_KEY].get("metastasis_probability")
            for i in images
            if isinstance(infos[i].get(CLASSIFIER_KEY), dict) and not infos[i][CLASSIFIER_KEY].get("error")
        }
        # the threshold the scores were made with (calibrated for the weights that made them)
        used = [infos[i][CLASSIFIER_KEY].get("threshold") for i in probabilities]
        used = [t for t in used if t is not None]
        threshold = float(request.get("threshold", max(set(used), key=used.count) if used else self.threshold))
        ranked = rank_uncertain(probabilities, threshold)
        if not ranked:
            return self._fallback(request, datastore, "no classifier scores yet (run /scoring/classifier_scores after training)")
        image_id = pick_uncertain({i: probabilities[i] for i in self._fresh(request, ranked, infos, time.time())}, threshold)[0]
        probability = float(probabilities[image_id])
        return {
            "id": image_id,
            "score": round(abs(probability - threshold), 5),
            "selection": {"metastasis_probability": probability, "threshold": threshold,
                          "scored": len(ranked), "unscored": len(images) - len(ranked)},
        }


class Epistemic(CachedScoreStrategy):
    """The unlabelled study on which Monte-Carlo dropout passes of the segmenter disagree most."""

    name = "epistemic"

    def __init__(self, recent_seconds: int = RECENT_SECONDS):
        super().__init__("Study with the highest Monte-Carlo dropout disagreement of the lesion segmentation", recent_seconds)

    def __call__(self, request, datastore):
        images, infos = self._unlabelled(request, datastore)
        if not images:
            return None
        scores = {
            i: infos[i][EPISTEMIC_KEY].get("score")
            for i in images
            if isinstance(infos[i].get(EPISTEMIC_KEY), dict) and not infos[i][EPISTEMIC_KEY].get("error")
        }
        ranked = pick_highest(scores, k=len(scores))
        if not ranked:
            return self._fallback(request, datastore, "no epistemic scores yet (run /scoring/epistemic after training)")
        image_id = pick_highest({i: scores[i] for i in self._fresh(request, ranked, infos, time.time())})[0]
        return {
            "id": image_id,
            "score": float(scores[image_id]),
            "selection": {"scored": len(ranked), "unscored": len(images) - len(ranked)},
        }


class Diversity(CachedScoreStrategy):
    """The unlabelled study farthest (cosine, classifier embedding) from every labelled study."""

    name = "diversity"

    def __init__(self, cache_fallback_dir=None, uncertain_pool: int = 0, threshold: float = DECISION_THRESHOLD,
                 recent_seconds: int = RECENT_SECONDS):
        super().__init__(
            "Study farthest from all labelled studies in the classifier's embedding (core-set, cosine distance)",
            recent_seconds,
        )
        self.cache_fallback_dir = cache_fallback_dir
        self.uncertain_pool = uncertain_pool
        self.threshold = threshold

    def __call__(self, request, datastore):
        images, infos = self._unlabelled(request, datastore)
        if not images:
            return None
        _, vectors = EmbeddingCache(cache_dir(datastore, self.cache_fallback_dir) / EMBEDDINGS_FILE).load()
        scored = [i for i in images if i in vectors]
        if not scored:
            note = "no classifier embeddings yet (run /scoring/classifier_scores after training)"
            return self._fallback(request, datastore, note)
        now = time.time()
        fresh = self._fresh(request, scored, infos, now)
        pending = [i for i in scored if i not in fresh]  # proposed recently: about to be labelled
        labelled = [i for i in datastore.get_labeled_images(request.get("label_tag"), request.get("labels")) if i in vectors]
        reference = [vectors[i] for i in labelled + pending]
        candidates = fresh
        pool = int(request.get("uncertain_pool", self.uncertain_pool) or 0)
        if pool > 0:
            probabilities = {i: infos[i].get(CLASSIFIER_KEY, {}).get("metastasis_probability") for i in fresh}
            uncertain = rank_uncertain(probabilities, float(request.get("threshold", self.threshold)))[:pool]
            candidates = uncertain or fresh
        image_id = pick_diverse({i: vectors[i] for i in scored}, reference, k=1, candidates=candidates)[0]
        distance = None
        if reference:
            distance = float(cosine_distances(np.asarray([vectors[image_id]]), np.asarray(reference)).min())
        return {
            "id": image_id,
            "score": distance,
            "selection": {"distance_to_nearest_labelled": distance, "labelled_with_embedding": len(labelled),
                          "pending": len(pending), "scored": len(scored), "unscored": len(images) - len(scored)},
        }
