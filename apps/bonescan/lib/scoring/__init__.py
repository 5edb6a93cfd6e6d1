"""Background scoring jobs for active learning and the caches they fill (see ``methods`` and ``cache``)."""

from lib.scoring.cache import CLASSIFIER_KEY, EPISTEMIC_KEY, EmbeddingCache, cache_dir, model_stamp
from lib.scoring.methods import ClassifierScoring, EpistemicScoring

__all__ = [
    "CLASSIFIER_KEY",
    "EPISTEMIC_KEY",
    "ClassifierScoring",
    "EmbeddingCache",
    "EpistemicScoring",
    "cache_dir",
    "model_stamp",
]
