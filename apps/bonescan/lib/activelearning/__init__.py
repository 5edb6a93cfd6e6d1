"""Active-learning strategies (answer from cached scores); the pure selection functions they share
with ``scripts/simulate_active_learning.py`` live in ``bonescan.selection``."""

from lib.activelearning.strategies import Diversity, Epistemic, Uncertainty

__all__ = ["Diversity", "Epistemic", "Uncertainty"]
