"""MONAI transforms of the app; the generic ones live in ``bonescan.transforms``."""

from bonescan.transforms import STUDY_KEY, LoadBoneScand, NormaliseCountsd

__all__ = ["STUDY_KEY", "LoadBoneScand", "NormaliseCountsd"]
