"""scripts/bootstrap_models.py: a run that saved no weights exits non-zero."""

from __future__ import annotations

import sys

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))

import bootstrap_models  # noqa: E402


def test_exit_code_says_when_nothing_was_saved(tmp_path, monkeypatch):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    monkeypatch.setattr(bootstrap_models.train, "main", lambda argv: 0)  # ran, published nothing
    assert bootstrap_models.main(["--minutes", "0.01", "--model-dir", str(model_dir), "--datastore", str(tmp_path)]) == 1

    def publishes(argv):
        for name in ("segmentation.pt", "segmentation.safetensors"):  # either weights format
            (model_dir / name).write_bytes(b"weights")
        return 0

    monkeypatch.setattr(bootstrap_models.train, "main", publishes)
    assert bootstrap_models.main(["--minutes", "0.01", "--model-dir", str(model_dir), "--datastore", str(tmp_path)]) == 0
