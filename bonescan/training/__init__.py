"""Training the two networks: data pools, recipes (transforms, losses) and a resumable loop.

Used by ``scripts/train.py`` (long runs), ``scripts/bootstrap_models.py`` (starter models) and
the MONAI Label trainers of the app, so all three train the same way.
"""
