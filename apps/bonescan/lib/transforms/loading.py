"""MONAI transforms that bring a study file into the canonical layout the networks expect."""

from __future__ import annotations

from typing import Hashable, Mapping

import numpy as np
from monai.transforms import MapTransform

from bonescan.io import read_study
from bonescan.preprocess import normalise_counts
from bonescan.study import Study

STUDY_KEY = "bonescan_study"


class LoadBoneScand(MapTransform):
    """Read ``data[key]`` (a path) with the bonescan readers.

    Puts the canonical counts (2, 1024, 256) in ``data[key]`` and the ``Study`` in
    ``data["bonescan_study"]``. A study that the caller already read (to check the input early)
    is taken from ``data["bonescan_study"]`` instead of reading the file twice.
    """

    def __call__(self, data: Mapping[Hashable, object]):
        d = dict(data)
        for key in self.key_iterator(d):
            study = d.get(STUDY_KEY)
            if not isinstance(study, Study):
                study = read_study(d[key])
                d[STUDY_KEY] = study
            d[key] = study.counts
        return d


class NormaliseCountsd(MapTransform):
    """Dose- and time-independent network input (see ``bonescan.preprocess``)."""

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = normalise_counts(np.asarray(d[key], dtype=np.float32))
        return d
