"""MONAI transforms of the app; the generic ones live in ``bonescan.transforms``."""

from bonescan.transforms import STUDY_KEY, LoadBoneScand, NormaliseCountsd
from lib.transforms.bstbi import ComputeBstbid

__all__ = ["STUDY_KEY", "ComputeBstbid", "LoadBoneScand", "NormaliseCountsd"]
