"""Active-learning strategies (answer from cached scores) and the pure selection functions they share
with ``scripts/simulate_active_learning.py``."""

from lib.activelearning.selection import pick_diverse, pick_highest, pick_uncertain, rank_highest, rank_uncertain
from lib.activelearning.strategies import Diversity, Epistemic, Uncertainty

__all__ = [
    "Diversity",
    "Epistemic",
    "Uncertainty",
    "pick_diverse",
    "pick_highest",
    "pick_uncertain",
    "rank_highest",
    "rank_uncertain",
]
