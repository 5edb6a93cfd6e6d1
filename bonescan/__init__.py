"""bonescan: reading, simulating and measuring whole-body bone scans (99mTc-MDP, planar NM).

The MONAI Label app in ``apps/bonescan`` and the command-line tools in ``scripts/`` build on
this package; it has no dependency on a running server.
"""

from bonescan.errors import BoneScanInputError
from bonescan.study import CANONICAL_SHAPE, VIEWS, Study, StudyMeta

__all__ = ["BoneScanInputError", "CANONICAL_SHAPE", "VIEWS", "Study", "StudyMeta"]
