"""Shared fixtures: small phantom studies on disk and a real MONAI Label server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
APP_DIR = REPO / "apps" / "bonescan"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nema_nm1_path() -> str:
    """The real NEMA WG04 NM1 whole-body scan (anterior only) shipped in PyPI's pydicom-data."""
    from pydicom.data import get_testdata_file

    return get_testdata_file("JPEG-LL.dcm", download=False)


def monai_label_nifti(dicom_path, out_path):
    """Convert DICOM to NIfTI as MONAI Label's dicom_to_nifti does (SimpleITK + GDCM)."""
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(str(dicom_path))
    sitk.WriteImage(reader.Execute(), str(out_path))
    return out_path


def to_8bit(counts):
    """Display export: each view scaled to 0-255; the posterior stored as seen from behind."""
    ant = np.clip(counts[0] / counts[0].max() * 255 * 4, 0, 255).astype(np.uint8)
    post = np.clip(counts[1] / counts[1].max() * 255 * 4, 0, 255).astype(np.uint8)[:, ::-1]
    return ant, post


@pytest.fixture(scope="session")
def nema_nm1() -> str:
    return nema_nm1_path()


def write_phantom_dicom(path: Path, seed: int, **overrides):
    """One phantom study written as NM multi-frame DICOM; returns the PhantomStudy."""
    from bonescan.io.dicom_writer import write_whole_body_nm
    from bonescan.phantoms.generator import make_phantom

    phantom = make_phantom(seed, **overrides)
    info = phantom.info
    write_whole_body_nm(
        path,
        phantom.counts,
        pixel_spacing=tuple(info["pixel_spacing"]),
        patient_id=f"PH{seed:04d}",
        sex=info["sex"],
        age_years=info["age"],
    )
    return phantom


class RunningServer:
    def __init__(self, url: str, studies: Path, model_dir: Path, log: Path, process: subprocess.Popen):
        self.url = url
        self.studies = studies
        self.model_dir = model_dir
        self.log = log
        self.process = process

    def client(self):
        from monailabel.client import MONAILabelClient

        return MONAILabelClient(self.url)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(studies: Path, model_dir: Path, log: Path, conf=None, timeout: float = 120.0) -> RunningServer:
    """`monailabel start_server` exactly as the Makefile runs it, on a free loopback port."""
    port = free_port()
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["MONAI_LABEL_SESSION_PATH"] = str(log.parent / "sessions")
    command = [
        "monailabel", "start_server",
        "--app", str(APP_DIR), "--studies", str(studies),
        "--host", "127.0.0.1", "--port", str(port),
        "--conf", "model_dir", str(model_dir),
    ]
    for key, value in {"starter_minutes": 0, **(conf or {})}.items():
        command += ["--conf", key, str(value)]
    handle = open(log, "w")
    process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/info/", timeout=2).status_code == 200:
                return RunningServer(url, studies, model_dir, log, process)
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"server did not answer within {timeout} s:\n{log.read_text()[-4000:]}")


def stop_server(server: RunningServer):
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()


def publish_untrained_weights(model_dir):
    """Weights of freshly initialised networks: enough to exercise reading and writing, not accuracy."""
    import torch

    from bonescan.networks import build_classifier, build_segmenter
    from bonescan.weights import save_weights, weights_file

    torch.manual_seed(0)
    save_weights(build_classifier(), weights_file(model_dir, "classification"))
    save_weights(build_segmenter(), weights_file(model_dir, "segmentation"))
