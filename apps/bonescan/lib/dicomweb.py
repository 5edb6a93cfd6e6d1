"""Studies and labels in a PACS over DICOMweb (Orthanc), for planar whole-body NM.

MONAI Label's DICOMWebDatastore converts every series to NIfTI with SimpleITK (fails for NM files
without ImagePositionPatient, and turns a 2-frame NM into a 3-D volume), writes SEGs with
converters that all fail for planar NM, and caches the study list for two hours. This store
keeps what works (a local cache folder in MONAI Label's layout, SeriesInstanceUID as image id)
and replaces the rest:

- images: the NM instance itself is cached as ``<SeriesInstanceUID>.dcm`` and read by our own
  reader, so views, orientation and the canonical layout are those of the local datastore and
  a model trained on one serves the other;
- the study list and the labels stored in the PACS are looked up again after ``list_seconds``
  (default 10 s), so new studies and SEGs appear without a restart;
- final labels are checked and stored locally first (atomically, as in the local store), then
  sent to the PACS as a DICOM SEG (``bonescan.io.dicom_seg``). A failed upload keeps the label,
  marks it ``pending`` in its info with the error, and is retried every ``retry_seconds`` and
  before each later save; :meth:`upload_status` lists what is pending (shown by
  /bonescan/status);
- physicians' SEGs found in the PACS (manual SEGs, ours or OHIF's, label map or binary) become
  final labels for training; model-output SEGs (SegmentAlgorithmType AUTOMATIC) do not.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import pydicom
from dicomweb_client.api import DICOMwebClient
from fastapi import HTTPException
from pydicom.dataset import Dataset

from bonescan.errors import BoneScanInputError
from bonescan.io import (
    labels_to_original,
    read_labels_nifti,
    read_study,
    write_labels_nifti,
)
from bonescan.io.canonical import stored_to_canonical
from bonescan.io.dicom_seg import read_label_seg, write_label_seg
from bonescan.pacs.upload import unreachable_reason
from bonescan.training.pool import is_drawn
from lib.datastore import BoneScanDatastore

logger = logging.getLogger(__name__)

FINAL = "final"
SEG_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7"}  # binary/fractional, label map


def _value(dataset_json: dict, keyword: str) -> str:
    """A value of a QIDO-RS JSON answer by keyword ('' when absent)."""
    tag = pydicom.datadict.tag_for_keyword(keyword)
    values = dataset_json.get(f"{tag:08X}", {}).get("Value") or [""]
    return str(values[0])


class BoneScanDicomWebDatastore(BoneScanDatastore):
    def __init__(self, client: DICOMwebClient, cache_path: str, search_filter: Optional[Dict[str, Any]] = None,
                 list_seconds: float = 10.0, retry_seconds: float = 30.0, version: str = "0.1.0"):
        self._client = client
        self._search_filter = dict(search_filter or {"Modality": "NM"})
        self._list_seconds = list_seconds
        self._retry_seconds = retry_seconds
        self._version = version
        self._series: Dict[str, dict] = {}  # SeriesInstanceUID -> QIDO attributes of the series
        self._seg_references: Dict[str, Tuple[str, bool]] = {}  # SEG series -> (image series, manual?)
        self._listed_at = -1e9
        self._labels_synced_at = -1e9
        self._upload_lock = threading.Lock()
        self._retrying = False
        os.makedirs(cache_path, exist_ok=True)
        super().__init__(cache_path, extensions=["*.dcm"], auto_reload=False)

    def name(self) -> str:
        return self._client.base_url

    def _unreachable(self) -> Optional[str]:
        """Why the PACS cannot be reached now, or None. Checked first: dicomweb_client would retry
        a refused connection for about 30 s, and a physician's save must not wait for that."""
        return unreachable_reason(self.name(), timeout=3.0)

    # --- studies -----------------------------------------------------------------------------------
    def _refresh_listing(self, force: bool = False) -> None:
        if not force and time.time() - self._listed_at < self._list_seconds:
            return
        problem = self._unreachable()
        if problem:
            logger.warning(f"DICOMweb: {problem}; using the last listing")
            self._listed_at = time.time()
            return
        try:
            found = self._client.search_for_series(search_filters=self._search_filter)
        except Exception as error:  # the PACS is away: keep serving what was listed before
            logger.warning(f"DICOMweb {self.name()}: cannot list series ({error}); using the last listing")
            self._listed_at = time.time()
            return
        self._series = {_value(s, "SeriesInstanceUID"): s for s in found}
        self._listed_at = time.time()

    def list_images(self) -> List[str]:
        self._refresh_listing()
        return sorted(set(self._series) | set(self._datastore.objects))

    def get_image_uri(self, image_id: str) -> str:
        """The cached NM file of a series, fetched (WADO-RS) on first use."""
        cached = super().get_image_uri(image_id)
        if cached and os.path.exists(cached):
            return cached
        self._refresh_listing()
        series = self._series.get(image_id)
        if series is None:
            self._refresh_listing(force=True)
            series = self._series.get(image_id)
        if series is None:
            return ""
        instances = self._client.retrieve_series(_value(series, "StudyInstanceUID"), image_id)
        nm = [ds for ds in instances if getattr(ds, "Modality", "") == "NM"] or instances
        with tempfile.TemporaryDirectory(prefix="bonescan-dicomweb-") as folder:
            path = os.path.join(folder, f"{image_id}.dcm")
            nm[0].save_as(path, write_like_original=False)
            info = {key: _value(series, key) for key in ("StudyInstanceUID", "PatientID", "StudyDate", "Modality")}
            self.add_image(image_id, path, {**info, "SeriesInstanceUID": image_id})
        return super().get_image_uri(image_id)

    def get_image_info(self, image_id: str) -> Dict[str, Any]:
        info = super().get_image_info(image_id)
        series = self._series.get(image_id)
        if series is not None:
            for key in ("StudyInstanceUID", "PatientID", "StudyDate", "Modality", "SeriesDescription"):
                info.setdefault(key, _value(series, key))
        return info

    # --- labels ------------------------------------------------------------------------------------
    def get_labeled_images(self, label_tag: Optional[str] = None, labels: Optional[List[str]] = None) -> List[str]:
        if label_tag in (None, FINAL):
            self.sync_labels_from_pacs()
        return super().get_labeled_images(label_tag, labels)

    def get_unlabeled_images(self, label_tag: Optional[str] = None, labels: Optional[List[str]] = None) -> List[str]:
        labeled = set(self.get_labeled_images(label_tag or FINAL))
        return [i for i in self.list_images() if i not in labeled]

    def datalist(self, full_path=True) -> List[Dict[str, Any]]:
        self.sync_labels_from_pacs()
        return super().datalist(full_path)

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: Dict[str, Any]) -> str:
        """Store locally (checked, atomic), then send final labels to the PACS as a SEG."""
        if not super().get_image_uri(image_id):
            self.get_image_uri(image_id)  # a study not opened yet: fetch it to check the label against
        label_info = dict(label_info or {})
        if label_tag == FINAL and not label_info.get("orthanc"):
            drawn = is_drawn(label_info)
            # A case-level answer alone has no drawing to send: an empty SEG would read as "no lesions".
            label_info["orthanc"] = {"status": "pending", "attempts": 0} if drawn else {"status": "local only"}
        label_id = super().save_label(image_id, label_filename, label_tag, label_info)
        if label_tag == FINAL and label_info["orthanc"].get("status") == "pending":
            self.upload_pending()
        return label_id

    def _write_seg(self, image_id: str, label_nifti: str, path: str, model_output: bool) -> Dataset:
        """A label NIfTI of ``image_id`` (MONAI Label's layout) as a DICOM SEG at ``path``; returns it."""
        nm_path = super().get_image_uri(image_id)
        meta = read_study(nm_path).meta
        labels = read_labels_nifti(label_nifti, meta)
        write_label_seg(nm_path, labels_to_original(labels, meta), path, model_output=model_output,
                        algorithm_version=self._version,
                        series_description="bonescan AI result" if model_output else "bonescan final label")
        return pydicom.dcmread(path)

    def upload_pending(self) -> Dict[str, int]:
        """Send every final label whose upload is pending; returns counts of sent and still pending."""
        sent = failed = 0
        problem = None
        with self._upload_lock:
            for image_id in list(self._datastore.objects):
                label = self._datastore.objects[image_id].labels.get(FINAL)
                state = dict((label.info.get("orthanc") or {}) if label else {})
                if state.get("status") != "pending":
                    continue
                try:
                    problem = problem or self._unreachable()
                    if problem:
                        raise ConnectionError(problem)
                    with tempfile.TemporaryDirectory(prefix="bonescan-seg-") as folder:
                        seg = self._write_seg(image_id, super().get_label_uri(image_id, FINAL),
                                              os.path.join(folder, "seg.dcm"), model_output=False)
                        self._client.store_instances([seg])
                    state.update(status="stored", seg_series=str(seg.SeriesInstanceUID), stored_at=int(time.time()))
                    state.pop("error", None)
                    sent += 1
                    logger.info(f"Label of {image_id} stored in {self.name()} as SEG series {seg.SeriesInstanceUID}")
                except Exception as error:  # network, PACS refusal: keep the label, retry later
                    state.update(status="pending", error=f"{type(error).__name__}: {error}"[:300])
                    failed += 1
                    logger.warning(f"Label of {image_id} not stored in {self.name()} yet ({state['error']}); kept locally, will retry")
                state["attempts"] = int(state.get("attempts", 0)) + 1
                self.update_label_info(image_id, FINAL, {"orthanc": state})
        if failed:
            self._start_retrying()
        return {"sent": sent, "pending": failed}

    def _start_retrying(self) -> None:
        """Retry pending uploads in the background until none is left."""
        if self._retrying or self._retry_seconds <= 0:
            return
        self._retrying = True

        def retry():
            try:
                while True:
                    time.sleep(self._retry_seconds)
                    if self.upload_pending()["pending"] == 0:
                        return
            finally:
                self._retrying = False

        threading.Thread(target=retry, name="bonescan-upload-retry", daemon=True).start()

    def upload_status(self) -> Dict[str, Any]:
        pending = []
        for image_id, obj in self._datastore.objects.items():
            state = (obj.labels.get(FINAL).info.get("orthanc") or {}) if obj.labels.get(FINAL) else {}
            if state.get("status") == "pending":
                pending.append({"image": image_id, "attempts": state.get("attempts", 0), "error": state.get("error", "")})
        return {"pacs": self.name(), "pending": pending, "retrying": self._retrying}

    def sync_labels_from_pacs(self, force: bool = False) -> int:
        """Take over physicians' SEGs from the PACS that are newer than the local labels; returns how many."""
        if not force and time.time() - self._labels_synced_at < self._list_seconds:
            return 0
        self._labels_synced_at = time.time()
        if self._unreachable():
            return 0
        try:
            segs = self._client.search_for_series(search_filters={"Modality": "SEG"})
        except Exception as error:
            logger.warning(f"DICOMweb {self.name()}: cannot list SEG series ({error}); using local labels")
            return 0
        self._refresh_listing()
        latest: Dict[str, Tuple[str, dict]] = {}  # image -> (date time, SEG series)
        for seg in segs:
            image_id, manual = self._seg_reference(seg)
            if not image_id or not manual or image_id not in self._series:
                continue
            when = _value(seg, "SeriesDate") + _value(seg, "SeriesTime")
            if image_id not in latest or when > latest[image_id][0]:
                latest[image_id] = (when, seg)
        taken = 0
        for image_id, (_, seg) in latest.items():
            seg_series = _value(seg, "SeriesInstanceUID")
            obj = self._datastore.objects.get(image_id)
            mine = obj.labels.get(FINAL) if obj else None
            state = (mine.info.get("orthanc") or {}) if mine else {}
            if mine and (state.get("seg_series") == seg_series or state.get("status") == "pending"):
                continue  # ours, or a local label not sent yet (the newer one)
            try:
                self._take_over_seg(image_id, seg)
                taken += 1
            except (BoneScanInputError, HTTPException) as error:
                logger.warning(f"SEG series {seg_series} for {image_id} not used as a label: {error}")
        return taken

    def _seg_reference(self, seg: dict) -> Tuple[str, bool]:
        """(referenced image series, manual?) of a SEG series, from its first instance's metadata.

        Remembered per SEG series (stored DICOM instances do not change), so the listing every
        few seconds does not fetch the metadata of every SEG in the PACS again.
        """
        series_uid = _value(seg, "SeriesInstanceUID")
        if series_uid in self._seg_references:
            return self._seg_references[series_uid]
        try:
            meta = self._client.retrieve_series_metadata(_value(seg, "StudyInstanceUID"), series_uid)
        except Exception as error:
            logger.warning(f"SEG series {series_uid}: no metadata ({error})")
            return "", False
        if not meta:
            return "", False
        dataset = Dataset.from_json(meta[0])
        referenced = dataset.get("ReferencedSeriesSequence")
        image_id = str(referenced[0].SeriesInstanceUID) if referenced else ""
        kinds = {str(getattr(s, "SegmentAlgorithmType", "MANUAL")) for s in dataset.get("SegmentSequence", [])}
        self._seg_references[series_uid] = (image_id, kinds != {"AUTOMATIC"})
        return self._seg_references[series_uid]

    def _take_over_seg(self, image_id: str, seg: dict) -> None:
        seg_series = _value(seg, "SeriesInstanceUID")
        nm_path = self.get_image_uri(image_id)
        instances = self._client.retrieve_series(_value(seg, "StudyInstanceUID"), seg_series)
        seg_dataset = next(ds for ds in instances if str(ds.SOPClassUID) in SEG_SOP_CLASSES)
        nm = pydicom.dcmread(nm_path)
        meta = read_study(nm_path).meta
        canonical = stored_to_canonical(read_label_seg(seg_dataset, nm), meta)
        with tempfile.TemporaryDirectory(prefix="bonescan-seg-") as folder:
            path = write_labels_nifti(os.path.join(folder, "label.nii.gz"), canonical, meta)
            info = {"source": "pacs", "orthanc": {"status": "stored", "seg_series": seg_series}}
            BoneScanDatastore.save_label(self, image_id, str(path), FINAL, info)
        logger.info(f"Label of {image_id} taken over from SEG series {seg_series} in {self.name()}")

    # --- results -----------------------------------------------------------------------------------
    def store_result(self, image_id: str, label_path: str, result: Dict[str, Any]) -> Dict[str, str]:
        """Send a model result to the PACS: its label map as a SEG (AUTOMATIC) and the bstbi result as an SR."""
        from bonescan.io.dicom_sr import write_measurement_sr

        nm_path = self.get_image_uri(image_id)
        with tempfile.TemporaryDirectory(prefix="bonescan-result-") as folder:
            seg = self._write_seg(image_id, label_path, os.path.join(folder, "seg.dcm"), model_output=True)
            instances = [seg]
            if "bstbi" in result:
                sr_path = write_measurement_sr(nm_path, seg, result, os.path.join(folder, "sr.dcm"),
                                               algorithm_version=self._version)
                instances.append(pydicom.dcmread(sr_path))
            self._client.store_instances(instances)
        stored = {"seg_series": str(seg.SeriesInstanceUID)}
        if len(instances) == 2:
            stored["sr_series"] = str(instances[1].SeriesInstanceUID)
        return stored
