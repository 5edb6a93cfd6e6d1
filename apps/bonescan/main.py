"""bonescan: MONAI Label app for whole-body bone scans (99mTc-MDP, anterior + posterior views).

Start with ``monailabel start_server --app apps/bonescan --studies datastore --host 127.0.0.1``.
App options (``--conf NAME VALUE``): every one, with its meaning and default, is in
``lib/options.py`` (``AppOptions``), parsed once here; a bad value stops the start saying why.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Dict

from fastapi import HTTPException
from monailabel.config import settings
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.config import TaskConfig
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.interfaces.tasks.train import TrainTask
from monailabel.tasks.activelearning.first import First
from monailabel.tasks.activelearning.random import Random

from bonescan import BoneScanInputError, monailabel_workarounds
from bonescan.labels import SEGMENTATION_LABELS
from bonescan.training.pool import is_drawn
from bonescan.versions import model_versions, weights_problems
from lib.configs.classification import Classification
from lib.configs.segmentation import Segmentation
from lib.datastore import BoneScanDatastore, SavedLabelCounter
from lib.lifetime import end_with_parent
from lib.options import AppOptions
from lib.infers import BstbiInfer, ModelNotTrainedError
from lib.infers.batch import BoneScanBatchInfer

logger = logging.getLogger(__name__)

monailabel_workarounds.apply()
end_with_parent()  # in a job subprocess: end when the server ends (even on SIGKILL)

MODEL_CONFIGS = {"classification": Classification, "segmentation": Segmentation}
# Starter training: share of the time, phantoms added to the demo labels, validation phantoms.
STARTER_PLAN = {
    "segmentation": {"share": 0.65, "val_phantoms": 60, "train_batch_size": 4},
    "classification": {"share": 0.35, "val_phantoms": 60, "train_batch_size": 16},
}


class BoneScanApp(MONAILabelApp):
    def __init__(self, app_dir: str, studies: str, conf: Dict[str, str]):
        self.options = AppOptions.from_conf(conf, app_dir)
        self.model_dir = self.options.model_dir
        os.makedirs(self.model_dir, exist_ok=True)
        self.models: Dict[str, TaskConfig] = {}
        for name, config_class in MODEL_CONFIGS.items():
            config = config_class()
            config.init(name, self.model_dir, conf, None)
            self.models[name] = config
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="bonescan",
            description="Bone metastases on whole-body bone scans: classification, segmentation, BSTBI",
            version="0.1.0",
            labels=SEGMENTATION_LABELS,
        )

    def init_infers(self) -> Dict[str, InferTask]:
        infers: Dict[str, InferTask] = {}
        for config in self.models.values():
            task = config.infer()
            infers.update(task if isinstance(task, dict) else {config.name: task})
        infers["bstbi"] = BstbiInfer(self.model_dir)
        return infers

    def init_trainers(self) -> Dict[str, TrainTask]:
        trainers: Dict[str, TrainTask] = {}
        for name, config in self.models.items():
            task = config.trainer()
            if task:
                trainers[name] = task
        return trainers

    def init_datastore(self):
        """Our checked, atomic local store, or our DICOMweb store for NM (see lib/dicomweb.py)."""
        if self.studies.startswith(("http://", "https://")):
            return self.init_dicomweb_datastore()
        return BoneScanDatastore(
            self.studies,
            extensions=settings.MONAI_LABEL_DATASTORE_FILE_EXT,
            auto_reload=settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD,
            read_only=settings.MONAI_LABEL_DATASTORE_READ_ONLY,
        )

    def init_dicomweb_datastore(self):
        """Studies in a PACS; no dcmqi download (our own SEG writer), NM search, short listing cache."""
        import hashlib

        from bonescan.pacs.upload import make_client
        from lib.dicomweb import BoneScanDicomWebDatastore

        url = self.studies.rstrip("/")
        cache = os.path.join(self.options.dicomweb_cache, hashlib.md5(url.encode()).hexdigest()[:12])
        logger.info(f"DICOMweb datastore {url}, cache {cache}")
        return BoneScanDicomWebDatastore(
            make_client(url, timeout=60.0),
            cache_path=cache,
            search_filter={"Modality": "NM"},
            list_seconds=self.options.dicomweb_list_seconds,
            retry_seconds=self.options.upload_retry_seconds,
            version=self.version,
        )

    def init_batch_infer(self):
        return BoneScanBatchInfer()

    def init_strategies(self) -> Dict[str, Strategy]:
        from lib.activelearning import Diversity, Epistemic, Uncertainty

        return {
            "random": Random(),
            "first": First(),
            "uncertainty": Uncertainty(),
            "epistemic": Epistemic(),
            "diversity": Diversity(cache_fallback_dir=self.model_dir),
        }

    def init_scoring_methods(self):
        """Background jobs (/scoring/<name>) filling the caches the strategies read; incremental per weights."""
        from lib.scoring import ClassifierScoring, EpistemicScoring

        return {
            "classifier_scores": ClassifierScoring(self.model_dir, cache_fallback_dir=self.model_dir),
            "epistemic": EpistemicScoring(self.model_dir),
        }

    def next_sample(self, request):
        """MONAI Label's next sample, without re-queueing every scoring job after each call.

        Scores change only when weights do: training jobs already ask for a refresh when they end,
        and at start the server scores once. A scoring job per "next sample" click loaded the
        whole app in a subprocess each time (seconds of CPU on 2 cores) for nothing new.
        """
        auto, self._auto_update_scoring = self._auto_update_scoring, False
        try:
            return super().next_sample(request)
        finally:
            self._auto_update_scoring = auto

    def untrained_models(self):
        return [name for name, task in self._infers.items() if hasattr(task, "is_trained") and not task.is_trained()]

    def weights_status(self) -> Dict[str, Any]:
        """Which weights serve each network (path, shipped or local, version) and any that cannot serve."""
        return {"model_versions": model_versions(self.model_dir), "weights_problems": weights_problems(self.model_dir)}

    def info(self) -> Dict[str, Any]:
        meta = super().info()
        untrained = self.untrained_models()
        meta["bonescan"] = {
            "model_dir": self.model_dir,
            "untrained_models": untrained,
            **self.weights_status(),
            "status": (
                "models not trained yet: " + ", ".join(untrained) + " (inference answers HTTP 503 until they are)"
                if untrained
                else "all models trained"
            ),
        }
        return meta

    def on_init_complete(self):
        """Server start (not in job subprocesses): our routes, then starter training if needed."""
        super().on_init_complete()
        from monailabel.app import app as api  # the FastAPI application serving this app

        from lib.endpoints import register

        register(api, self)
        from lib.security import secure

        secure(api, self)  # stock routes checked, same-origin, Host allow-list, token; refuses an open bind
        try:  # the OHIF viewer at /viewer/ (answers 404 with what to do when var/ohif is missing)
            from lib.viewer import register_viewer

            register_viewer(api, self.options.ohif_dir, self.studies)
        except Exception:
            logger.exception("The OHIF viewer at /viewer/ is not available")
        # labels a previous run could not send to the PACS (none with a local store)
        threading.Thread(target=self.datastore().upload_pending, name="bonescan-upload-at-start", daemon=True).start()
        for kind, problem in weights_problems(self.model_dir).items():
            logger.error(f"The {kind} model cannot serve (its infer answers HTTP 503): {problem}")
        self.train_starter_models()

    def labels_since_training(self) -> SavedLabelCounter:
        return SavedLabelCounter(os.path.join(self.model_dir, "saved_labels.json"))

    def save_case_label(self, image_id: str, metastatic: bool, annotator: str = "") -> dict:
        """A case-level answer without drawing; counts towards retraining like any saved label."""
        saved = self.datastore().save_case_label(image_id, metastatic, annotator)
        return {**saved, **(self.on_save_label(image_id, image_id) or {})}

    def learning_status(self) -> Dict[str, Any]:
        datastore = self.datastore()
        final = datastore.get_labeled_images(label_tag="final")
        drawn = sum(is_drawn(datastore.get_label_info(datastore.get_label_by_image_id(i, "final"), "final")) for i in final)
        return {
            **self.weights_status(),
            "untrained_models": self.untrained_models(),
            "studies": len(datastore.list_images()),
            "final_labels": {"total": len(final), "drawn": drawn, "case_level_only": len(final) - drawn},
            "retrain_every": self.options.retrain_every,
            "labels_since_last_training": self.labels_since_training().count(),
            "pacs_uploads": datastore.upload_status(),
        }

    def training_params(self, name: str, minutes: float, run_name: str) -> dict:
        """Request of one background training job: its share of ``minutes`` and the phantoms it adds."""
        phantoms = self.options.starter_phantoms
        plan = dict(STARTER_PLAN[name])
        params = {"minutes": round(minutes * plan.pop("share"), 2), "max_epochs": 1000, "name": run_name,
                  "phantoms": phantoms, **plan}
        params["val_phantoms"] = max(2, min(params["val_phantoms"], phantoms // 2))
        return params

    def train_starter_models(self):
        """Queue MONAI Label training jobs for models without weights, so a new install needs no step by hand."""
        minutes = self.options.starter_minutes
        untrained = [m for m in self.untrained_models() if m in self._trainers]
        if minutes <= 0 or not untrained:
            return
        for name in ("segmentation", "classification"):
            if name not in untrained:
                continue
            params = self.training_params(name, minutes, "starter")
            logger.info(f"No weights for '{name}': queueing a starter training job {params}")
            self.async_training(name, params={name: params}, enqueue=True)

    def on_save_label(self, image_id, label_id):
        """Count saved labels; every ``retrain_every`` of them, queue retraining of both networks."""
        result = super().on_save_label(image_id, label_id) or {}
        every = self.options.retrain_every
        if every <= 0:
            return result
        counter = self.labels_since_training()
        count = counter.add(image_id)
        result["labels_until_retraining"] = max(every - count, 0)
        if count >= every:
            counter.reset()
            self.retrain(reason=f"{count} new labels")
            result["retraining"] = "queued"
        return result

    def retrain(self, reason: str):
        """Queue incremental training of both networks (MONAI Label runs one job at a time)."""
        minutes = self.options.retrain_minutes
        for name in ("segmentation", "classification"):
            params = self.training_params(name, minutes, "retrain")
            logger.info(f"Retraining '{name}' ({reason}): {params}")
            self.async_training(name, params={name: params}, enqueue=True)

    def store_result_in_pacs(self, request, result):
        """``params={"output": "dicom_seg"}``: the result goes to the PACS as SEG (+ SR for bstbi).

        MONAI Label's own ``?output=dicom_seg`` converts with dcmqi/ITK from a NIfTI of the image,
        which does not exist for planar NM, so the request rides in the params instead.
        """
        label = result.get("file") or result.get("label")
        params = result.get("params") or {}
        stored = self.datastore().store_result(request["image"], label, params)
        result["params"] = {**params, "pacs": stored}
        return result

    def infer(self, request, datastore=None):
        """MONAI Label's infer, with clear HTTP answers for bad studies (422) and untrained models (503)."""
        from lib.identifiers import infer_request, save_result_label

        try:
            datastore = datastore or self.datastore()
            resolved, save_tag = infer_request(request, datastore)  # datastore ids only, never server paths
            result = super().infer(resolved, datastore)
            result = save_result_label(datastore, request.get("image"), request.get("model"), result, save_tag)
            if request.get("output") == "dicom_seg":
                result = self.store_result_in_pacs(request, result)
            return result
        except BoneScanInputError as error:
            logger.warning(f"Refused study: {error}")
            raise HTTPException(status_code=422, detail=str(error)) from error
        except ModelNotTrainedError as error:
            raise HTTPException(status_code=503, detail=str(error)) from error
