"""Send DICOM files to a DICOMweb server with STOW-RS (``dicomweb_client.store_instances``).

``upload_folder(DIR, url)`` finds every DICOM file under DIR (``*.dcm`` and any file with the
``DICM`` preamble), sends them in batches and returns an :class:`UploadReport`: which files were
stored, which failed and why (not DICOM, unreadable, refused by the server with its DICOM
failure reason), how many studies and how long. A failing file never stops the run; a server
that cannot be reached does (the remaining files are reported as not sent).
``scripts/upload_studies.py`` is the command-line front end.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:8042/dicom-web"

# DICOM PS3.18 / PS3.4 failure reasons a STOW-RS answer carries in FailedSOPSequence.
FAILURE_REASONS = {
    0x0110: "processing failure",
    0x0112: "no such SOP instance",
    0x0122: "SOP class not supported",
    0x0124: "not authorized",
    0x0211: "unrecognized operation",
    0xA700: "out of resources",
    0xA900: "data set does not match SOP class",
    0xC000: "cannot understand (the server could not store this instance)",
    0xC122: "referenced transfer syntax not supported",
}


@dataclass
class FileResult:
    path: Path
    ok: bool
    reason: str = ""
    study_uid: str = ""
    sop_uid: str = ""


@dataclass
class UploadReport:
    url: str
    stored: List[FileResult] = field(default_factory=list)
    failed: List[FileResult] = field(default_factory=list)
    ignored: List[Path] = field(default_factory=list)  # neither *.dcm nor DICM preamble
    seconds: float = 0.0
    not_sent: int = 0  # failed because the server could not be reached (reason below)
    unreachable: str = ""

    @property
    def studies(self) -> int:
        return len({r.study_uid for r in self.stored})

    @property
    def seconds_per_study(self) -> float:
        return self.seconds / self.studies if self.studies else 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        text = (f"{len(self.stored)} instance(s) of {self.studies} study(ies) stored at {self.url}, "
                f"{len(self.failed)} failed, in {self.seconds:.1f} s ({self.seconds_per_study:.3f} s per study)")
        if self.not_sent:
            text += f"; {self.not_sent} not sent: {self.unreachable}"
        if self.ignored:
            text += f"; {len(self.ignored)} other file(s) ignored (no .dcm suffix, no DICM preamble)"
        return text


def is_dicom_file(path) -> bool:
    """True for a DICOM Part 10 file: 128-byte preamble followed by ``DICM``."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def find_dicom_files(root) -> Tuple[List[Path], List[Path]]:
    """(candidates, ignored) under ``root``, recursively and sorted.

    Candidates are files named ``*.dcm`` (any case; a ``.dcm`` that is not DICOM is then
    reported as a failure) and files with the DICM preamble whatever their name.
    """
    root = Path(root)
    if root.is_file():
        return [root], []
    candidates, ignored = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if not path.is_file():
                continue
            if name.lower().endswith(".dcm") or is_dicom_file(path):
                candidates.append(path)
            else:
                ignored.append(path)
    return candidates, ignored


class _TimeoutAdapter:
    """Give every request of a session a default timeout (requests has none)."""

    @staticmethod
    def mount(session, timeout: float):
        from requests.adapters import HTTPAdapter

        class Adapter(HTTPAdapter):
            def send(self, request, **kwargs):
                if kwargs.get("timeout") is None:
                    kwargs["timeout"] = timeout
                return super().send(request, **kwargs)

        for prefix in ("http://", "https://"):
            session.mount(prefix, Adapter())


def _session(url: str, timeout: float):
    import requests

    session = requests.Session()
    if (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1"):
        session.trust_env = False
    _TimeoutAdapter.mount(session, timeout)
    return session


def make_client(url: str = DEFAULT_URL, timeout: float = 120.0):
    """A ``DICOMwebClient`` with a request timeout; proxies from the environment are ignored for
    loopback addresses (an ``http_proxy`` would otherwise receive requests meant for 127.0.0.1)."""
    from dicomweb_client import DICOMwebClient

    return DICOMwebClient(url.rstrip("/"), session=_session(url, timeout))


def unreachable_reason(url: str, timeout: float = 10.0) -> Optional[str]:
    """None when the server answers at all (any HTTP status), else why not. Checked once before
    sending: dicomweb_client retries a refused connection 5 times with growing waits (30 s)."""
    import requests

    try:
        _session(url, timeout).get(url.rstrip("/") + "/studies", params={"limit": 1})
    except requests.RequestException as exc:
        return f"cannot reach {url} ({type(exc).__name__}); is the server running? (scripts/orthanc.sh start)"
    return None


def _read(path: Path):
    """(dataset, None) or (None, reason)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    if not is_dicom_file(path):
        return None, "not a DICOM file (no 'DICM' marker after the 128-byte preamble)"
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError as exc:
        return None, f"not a DICOM file ({exc})"
    except Exception as exc:  # noqa: BLE001 - any damage is reported per file
        return None, f"cannot be read as DICOM ({type(exc).__name__}: {exc})"
    if not str(ds.get("SOPInstanceUID", "")).strip():
        return None, "SOPInstanceUID is missing (a study store cannot file an instance without it)"
    return ds, None


def _sequences(answer) -> Tuple[Dict[str, str], set]:
    """({failed SOP UID: reason}, {stored SOP UIDs}) from a STOW-RS answer dataset."""
    failed: Dict[str, str] = {}
    for item in answer.get("FailedSOPSequence", []) or []:
        code = int(item.get("FailureReason", 0) or 0)
        text = FAILURE_REASONS.get(code, "refused")
        failed[str(item.get("ReferencedSOPInstanceUID", ""))] = f"{text} (FailureReason 0x{code:04X})"
    stored = {str(item.get("ReferencedSOPInstanceUID", "")) for item in answer.get("ReferencedSOPSequence", []) or []}
    return failed, stored


def _error_answer(response) -> Tuple[Dict[str, str], set, str]:
    """What an HTTP error answer says: a STOW-RS answer (Orthanc's 400 for refused instances,
    sent as JSON without a Content-Type), an Orthanc error JSON, or anything else (an excerpt)."""
    import pydicom

    try:
        payload = json.loads(response.content or b"{}")
    except ValueError:
        return {}, set(), (response.text or "")[:300].strip()
    if isinstance(payload, dict) and ("Message" in payload or "Details" in payload):
        return {}, set(), "; ".join(str(payload[k]) for k in ("Message", "Details") if payload.get(k))
    try:
        failed, stored = _sequences(pydicom.Dataset.from_json(payload))
    except Exception:  # noqa: BLE001 - unexpected body: keep a short excerpt
        return {}, set(), json.dumps(payload)[:300]
    return failed, stored, ""


def _store(client, batch: Sequence[Tuple[Path, object]]) -> Tuple[Dict[str, str], set, Optional[str]]:
    """POST one batch: (failed, stored, batch_error). Network errors (no answer) propagate."""
    import requests

    try:
        answer = client.store_instances([ds for _, ds in batch])
    except requests.HTTPError as exc:
        failed, stored, message = _error_answer(exc.response)
        error = f"refused by the server (HTTP {exc.response.status_code}{': ' + message if message else ''})"
        return failed, stored, error
    except requests.RequestException:
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. a data set pydicom reads but cannot encode again
        return {}, set(), f"could not be sent ({type(exc).__name__}: {exc})"
    failed, stored = _sequences(answer)
    if not stored and not failed:
        # A success without a body (allowed by some servers): every instance was accepted.
        stored = {str(ds.SOPInstanceUID) for _, ds in batch}
    return failed, stored, None


class _Upload:
    """One STOW-RS run: the report it fills, which files are settled, why the server cannot be reached."""

    def __init__(self, client, url: str, report: UploadReport, bar,
                 on_failure: Optional[Callable[[FileResult], None]], unreachable: Optional[str]):
        self.client, self.url, self.report, self.bar, self.on_failure = client, url, report, bar, on_failure
        self.unreachable = unreachable
        self.done: set = set()

    def fail(self, path: Path, reason: str, ds=None, quiet: bool = False) -> None:
        self.done.add(path)
        result = FileResult(path, False, reason, str(ds.get("StudyInstanceUID", "")) if ds is not None else "",
                            str(ds.get("SOPInstanceUID", "")) if ds is not None else "")
        self.report.failed.append(result)
        if self.on_failure and not quiet:
            self.on_failure(result)

    def not_sent(self, path: Path, ds=None) -> None:
        """A file left unsent because the server is away: said once, in the summary."""
        self.report.not_sent += 1
        self.report.unreachable = self.unreachable
        self.fail(path, f"not sent: {self.unreachable}", ds, quiet=True)

    def ok(self, path: Path, ds) -> None:
        self.done.add(path)
        self.report.stored.append(FileResult(path, True, "", str(ds.get("StudyInstanceUID", "")), str(ds.SOPInstanceUID)))

    def send(self, batch: List[Tuple[Path, object]]) -> None:
        """POST ``batch``; files the answer does not settle are sent again one by one."""
        failed, stored, error = _store(self.client, batch)
        retry = []
        for path, ds in batch:
            uid = str(ds.SOPInstanceUID)
            if uid in failed:
                self.fail(path, f"refused by the server: {failed[uid]}", ds)
            elif uid in stored:
                self.ok(path, ds)
            elif len(batch) > 1:
                retry.append((path, ds))
            else:
                self.fail(path, error or "not acknowledged by the server (its log may say why)", ds)
        for item in retry:
            self.send([item])

    def flush(self, batch: List[Tuple[Path, object]]) -> None:
        """Send and empty ``batch``; with no answer at all, it and every later file are not sent."""
        import requests

        if not batch:
            return
        try:
            self.send(batch)
        except requests.RequestException as exc:  # no answer at all (refused, reset, timed out)
            self.unreachable = f"cannot reach {self.url} ({type(exc).__name__}); is the server running?"
            for path, ds in batch:
                if path not in self.done:
                    self.not_sent(path, ds)
        self.bar.update(len(batch))
        batch.clear()


def upload_files(files: Iterable[Path], url: str = DEFAULT_URL, *, client=None, batch_size: int = 10,
                 batch_bytes: int = 64 * 2**20, progress: bool = True,
                 on_failure: Optional[Callable[[FileResult], None]] = None,
                 ignored: Sequence[Path] = ()) -> UploadReport:
    """Send ``files`` with STOW-RS in batches of at most ``batch_size`` files / ``batch_bytes``.

    A batch with any failure is resolved per file: failures the server names by SOP Instance UID
    get its reason, the other files of the batch are sent again one by one (storing the same
    instance twice is harmless). ``on_failure`` is called for each failed file as it happens.
    """
    from tqdm import tqdm

    files = list(files)
    report = UploadReport(url=url, ignored=list(ignored))
    start = time.perf_counter()
    bar = tqdm(total=len(files), unit="file", desc="STOW-RS", disable=not progress, dynamic_ncols=True)
    run = _Upload(client or make_client(url), url, report, bar, on_failure,
                  unreachable_reason(url) if files else None)
    batch: List[Tuple[Path, object]] = []
    try:
        size = 0
        for path in files:
            if run.unreachable:
                run.not_sent(path)
                bar.update()
                continue
            ds, reason = _read(path)
            if ds is None:
                run.fail(path, reason)
                bar.update()
                continue
            batch.append((path, ds))
            size += path.stat().st_size
            if len(batch) >= batch_size or size >= batch_bytes:
                run.flush(batch)
                size = 0
        run.flush(batch)
    finally:
        bar.close()
    report.seconds = time.perf_counter() - start
    return report


def upload_folder(root, url: str = DEFAULT_URL, **kwargs) -> UploadReport:
    """Send every DICOM file under ``root`` (see :func:`find_dicom_files`); see :func:`upload_files`."""
    files, ignored = find_dicom_files(root)
    return upload_files(files, url, ignored=ignored, **kwargs)


def labels_as_segs(studies, labels, out_dir) -> Tuple[List[Path], List[str]]:
    """Write each ``<labels>/<study>.nii.gz`` as a physician-label SEG of ``<studies>/<study>.dcm``.

    Returns the SEG files and one message per label that could not be converted (no matching
    study, wrong shape or values), so a bad label is reported instead of stopping the upload.
    """
    from bonescan.errors import BoneScanInputError
    from bonescan.io import labels_to_original, read_labels_nifti, read_study
    from bonescan.io.dicom_seg import write_label_seg

    segs, problems = [], []
    for label in sorted(Path(labels).glob("*.nii.gz")):
        study = Path(studies) / (label.name[: -len(".nii.gz")] + ".dcm")
        if not study.exists():
            problems.append(f"{label}: no study {study.name} in {studies}")
            continue
        try:
            meta = read_study(study).meta
            stored = labels_to_original(read_labels_nifti(label, meta), meta)
            segs.append(Path(write_label_seg(study, stored, Path(out_dir) / f"{study.stem}_seg.dcm", model_output=False,
                                             series_description="bonescan final label")))
        except BoneScanInputError as error:
            problems.append(str(error))
    return segs, problems
