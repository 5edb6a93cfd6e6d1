"""The BSTBI post-transform: from network outputs to the report numbers and the decision."""

from __future__ import annotations

from monai.transforms import MapTransform

from bonescan.analysis import study_result
from bonescan.decision import DECISION_THRESHOLD
from bonescan.transforms import STUDY_KEY


class ComputeBstbid(MapTransform):
    """Reads ``pred`` (canonical label map), ``lesion_probability`` and ``classifier_probability``;
    writes the ``bstbi`` result JSON (BSTBI per view and overall, lesions, areas, decision) to ``result``.
    The decision threshold is ``decision_threshold`` when the data carry one (calibrated for the
    weights that ran, see bonescan.calibration), else ``threshold``."""

    def __init__(self, keys="pred", threshold: float = DECISION_THRESHOLD):
        super().__init__(keys)
        self.threshold = threshold

    def __call__(self, data):
        d = dict(data)
        d["result"] = study_result(
            d[STUDY_KEY], d["classifier_probability"], d["pred"], d["lesion_probability"],
            d.get("decision_threshold", self.threshold),
        )
        return d
