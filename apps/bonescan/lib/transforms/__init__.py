from lib.transforms.loading import LoadBoneScand, NormaliseCountsd

__all__ = ["LoadBoneScand", "NormaliseCountsd"]
