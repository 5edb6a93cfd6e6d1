"""Evaluate diagnosis-model outputs (``scripts/batch_infer.py``) against phantom ground truth.

``load`` pairs prediction files with a truth set and reduces each study to numbers, ``metrics``
aggregates them (case level, segmentation, lesion level, BSTBI, targets), ``plots`` and
``report`` write the figures and ``report.md`` that ``scripts/evaluate.py`` produces.
"""

from bonescan.evaluation.load import EvaluationInputError, StudyResult, evaluate_folder, evaluate_study, match_studies
from bonescan.evaluation.metrics import summarize

__all__ = ["EvaluationInputError", "StudyResult", "evaluate_folder", "evaluate_study", "match_studies", "summarize"]
