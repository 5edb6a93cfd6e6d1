"""Each MONAI Label 0.8.5 work-around (bonescan/monailabel_workarounds.py) still holds."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pydicom

from bonescan import monailabel_workarounds

REPO = Path(__file__).resolve().parents[1]


def test_pydicom_seg_imports_with_the_pinned_pydicom():
    assert int(pydicom.__version__.split(".")[0]) == 2, "pydicom 3 breaks pydicom_seg and so the server start"
    importlib.import_module("pydicom_seg")
    importlib.import_module("monailabel.main")


def test_torchvision_and_mlflow_are_not_installed():
    for name in ("torchvision", "mlflow"):
        assert importlib.util.find_spec(name) is None, f"{name} is back in the environment: see workaround 2/3"


def test_apply_turns_tracking_off_and_lists_dicom_files():
    from monailabel.config import settings

    monailabel_workarounds.apply()
    assert settings.MONAI_LABEL_TRACKING_ENABLED is False
    assert "*.dcm" in settings.MONAI_LABEL_DATASTORE_FILE_EXT


def test_makefile_binds_loopback_and_runs_the_venv_python():
    makefile = (REPO / "Makefile").read_text()
    assert "HOST ?= 127.0.0.1" in makefile and "--host $(HOST)" in makefile
    assert 'PATH="$(CURDIR)/$(VENV)/bin:$$PATH"' in makefile


def test_launcher_uses_the_first_python_on_path():
    """The reason for the PATH work-around: with the venv first, the launcher finds monailabel."""
    venv_bin = os.path.dirname(sys.executable)
    env = dict(os.environ, PATH=venv_bin + os.pathsep + os.environ["PATH"])
    out = subprocess.run(["monailabel", "start_server", "--help"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--studies" in out.stdout
