"""What both bonescan trainers add to MONAI Label's BasicTrainTask.

- Training data: the datastore's final labels (case-level answer from the label info, or from
  the lesion pixels) plus, on request (``phantoms``), a cached pool of our phantoms; validation
  on phantoms of other seeds (``val_phantoms``) or a split of the datastore.
- Incremental: starts from the weights the server is serving.
- bf16 autocast and channels_last on CPU (MONAI's ``amp`` is CUDA-only), and a wall-clock
  budget (``minutes``) checked after each epoch's validation, so starter models finish in time.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Dict, List

import torch
from ignite.engine import Events
from monai.engines.utils import IterationEvents
from monai.inferers import SimpleInferer
from monai.utils.enums import CommonKeys as Keys
from monailabel.interfaces.datastore import Datastore
from monailabel.tasks.train.basic_train import BasicTrainTask, Context

from bonescan.networks import bf16_is_fast
from bonescan.training.pool import build_phantom_pool, case_label, is_drawn
from lib.trainers.publish import PublishIfNotWorse

logger = logging.getLogger(__name__)

POOL_SEED = 70_000
VAL_POOL_SEED = 570_000
VALIDATION_PHANTOMS = 60  # the smallest validation pool that decides (default when a request names none)


def held_out_for_validation(image: str) -> bool:
    """One labelled study in five, the same ones in every round (a stable hash of the file name)."""
    import zlib

    return zlib.crc32(os.path.basename(image).encode()) % 5 == 0


def bf16_iteration(engine, batchdata):
    """One training step with channels_last inputs, under bf16 autocast where the hardware runs it natively."""
    inputs, targets = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking)[:2]
    inputs = inputs.contiguous(memory_format=torch.channels_last)
    engine.state.output = {Keys.IMAGE: inputs, Keys.LABEL: targets}
    engine.network.train()
    engine.optimizer.zero_grad(set_to_none=True)
    device_type = "cuda" if inputs.is_cuda else "cpu"
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16_is_fast(device_type)):
        pred = engine.network(inputs)
    engine.state.output[Keys.PRED] = pred.float()
    engine.fire_event(IterationEvents.FORWARD_COMPLETED)
    loss = engine.loss_function(engine.state.output[Keys.PRED], targets).mean()
    engine.state.output[Keys.LOSS] = loss
    engine.fire_event(IterationEvents.LOSS_COMPLETED)
    loss.backward()
    engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
    engine.optimizer.step()
    engine.fire_event(IterationEvents.MODEL_COMPLETED)
    return engine.state.output


class TimeBudget:
    """Ends training after the last epoch that still fits in ``minutes`` since ``start`` (0: no budget).

    Checked after each epoch's validation, so the weights published last are validated ones; an
    epoch that would not finish in time is not started.
    """

    def __init__(self, minutes: float, start: float):
        self.minutes = float(minutes)
        self.start = start
        self.epoch_started = start

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._check)

    def _epoch_started(self, engine) -> None:
        self.epoch_started = time.time()

    def _check(self, engine) -> None:
        if self.minutes <= 0:
            return
        now = time.time()
        last_epoch = now - self.epoch_started
        if now + last_epoch - self.start >= self.minutes * 60:
            logger.info(f"Time budget of {self.minutes} min: stopping after epoch {engine.state.epoch} ({(now - self.start) / 60:.1f} min)")
            engine.terminate()


class BoneScanTrainTask(BasicTrainTask):
    def __init__(self, model_dir: str, publish_path: str, pool_dir: str, description: str, served_dir: str, config=None,
                 **kwargs):
        defaults = {
            "minutes": 0,  # wall-clock budget (0: none, max_epochs decides)
            "phantoms": 0,  # phantom studies added to the datastore's labels
            "val_phantoms": 0,  # validate on this many phantoms of other seeds (0: split the datastore)
            "workers": 1,
            "max_epochs": 20,
            "train_batch_size": 4,
            "val_batch_size": 1,
            "dataset": ["CacheDataset", "Dataset"],
            "dataloader": ["DataLoader", "ThreadDataLoader"],
            "multi_gpu": False,
            "early_stop_patience": 5,
        }
        defaults.update(config or {})
        super().__init__(
            model_dir=model_dir,
            description=description,
            config=defaults,
            amp=False,
            publish_path=publish_path,
            tracking=None,  # see bonescan/monailabel_workarounds.py (MLflow)
            **kwargs,
        )
        self.pool_dir = pool_dir
        self.publish_path = publish_path  # the local layer: never the shipped weights (bonescan.weights)
        self.served_dir = served_dir
        self.kind = os.path.basename(publish_path).split(".")[0]

    needs_drawing = False  # True: labels with only a case-level answer are of no use to this network

    def __call__(self, request, datastore: Datastore):
        self._job_start = time.time()  # the budget covers data preparation too
        return super().__call__(request, datastore)

    # --- data -------------------------------------------------------------------------------------
    def pre_process(self, request, datastore: Datastore) -> List[Dict[str, Any]]:
        items = []
        for image_id in datastore.get_labeled_images(label_tag="final"):
            label_id = datastore.get_label_by_image_id(image_id, "final")
            info = datastore.get_label_info(label_id, "final") or {}
            drawn = is_drawn(info)
            if self.needs_drawing and not drawn:
                continue
            items.append(
                {
                    "image": datastore.get_image_uri(image_id),
                    "label": datastore.get_label_uri(label_id, "final") if drawn else "",
                    "metastatic": case_label(info, None) if "metastatic" in info else None,
                    "has_label_map": drawn,
                }
            )
        n_phantoms = int(request.get("phantoms", 0))
        items += self._pool_items(n_phantoms, POOL_SEED, "train")
        logger.info(f"Training items: {len(items)} ({n_phantoms} of them phantoms)")
        return items

    def _pool_items(self, n: int, seed: int, name: str) -> List[Dict[str, Any]]:
        if n <= 0:
            return []
        paths = build_phantom_pool(os.path.join(self.pool_dir, name), n, seed, workers=1, progress=False)
        return [{"image": str(p), "label": str(p), "metastatic": None, "has_label_map": True} for p in paths]

    def partition_datalist(self, context: Context, shuffle=False):
        """A fixed validation pool large enough to decide: phantoms of their own seeds plus the labelled
        studies held out for good (one in five, chosen by a hash of the id, so every round holds out the same).

        A 4-study split of the datastore swung the key metric by more than the differences it decided
        between (issue 10); publish-if-better, early stopping and the threshold all use this pool.
        """
        n_val = int(context.request.get("val_phantoms", VALIDATION_PHANTOMS))
        train, held_out = [], []
        for item in context.datalist:
            from_pool = str(item["image"]).endswith(".npz")
            (held_out if not from_pool and held_out_for_validation(str(item["image"])) else train).append(item)
        val = held_out + self._pool_items(n_val, VAL_POOL_SEED, "val")
        if len(val) < VALIDATION_PHANTOMS:
            logger.warning(f"Validating on {len(val)} studies only (fewer than {VALIDATION_PHANTOMS}): "
                           "publish-if-better and the threshold may follow noise")
        logger.info(f"Validation: {len(held_out)} held-out labelled studies + {len(val) - len(held_out)} phantoms")
        return train, val

    def train_data_loader(self, context, num_workers=0, shuffle=True):
        return super().train_data_loader(context, num_workers=int(context.request.get("workers", 1)), shuffle=shuffle)

    # --- optimisation -----------------------------------------------------------------------------
    def optimizer(self, context: Context):
        return torch.optim.AdamW(context.network.parameters(), lr=float(context.request.get("lr", 5e-4)), weight_decay=1e-4)

    def _load_checkpoint(self, context, train_handlers):
        """Continue from the weights being served (incremental training), checked by sha256.

        MONAI Label's CheckpointLoader would unpickle a ``.pt``; our weights are safetensors.
        """
        from bonescan.versions import load_served, served_record

        if context.pretrained and served_record(self.served_dir, self.kind):
            load_served(context.network, self.served_dir, self.kind)
            logger.info(f"{self.kind}: training starts from the served weights {served_record(self.served_dir, self.kind)['weights']}")

    def train_inferer(self, context: Context):
        return SimpleInferer()

    def val_inferer(self, context: Context):
        return SimpleInferer()  # whole studies: the networks are fully convolutional / global-pooled

    def train_iteration_update(self, context: Context):
        return bf16_iteration

    def finalize(self, context):
        """MONAI Label's stats and early stopping, but our publisher instead of its copy-the-best."""
        publish_path, self._publish_path = self._publish_path, None
        try:
            super().finalize(context)
        finally:
            self._publish_path = publish_path
        if context.evaluator and context.local_rank == 0:
            metric_name = list(self.val_key_metric(context).keys())[0]
            publisher = PublishIfNotWorse(
                self.publish_path, metric_name, context.network, len(context.train_datalist), len(context.val_datalist),
                served_dir=self.served_dir, kind=self.kind,
            )
            context.trainer.add_event_handler(Events.STARTED, lambda _: publisher.measure_served(context.evaluator))
            context.evaluator.add_event_handler(Events.EPOCH_COMPLETED, publisher)
            context.trainer.add_event_handler(Events.COMPLETED, lambda _: self.calibrate_decision(context))

    def calibrate_decision(self, context) -> None:
        """Choose the decision threshold for the weights now served, on this job's validation studies."""
        from bonescan.calibration import calibrate
        from bonescan.errors import ModelNotTrainedError
        from bonescan.study import Study, StudyMeta
        from bonescan.transforms import LoadLabelledStudyd

        load = LoadLabelledStudyd(load_label_map=False)

        def studies():
            for item in context.val_datalist:
                d = load(dict(item))
                yield Study(d["image"], StudyMeta(source_file=str(item["image"]))), bool(d["metastatic"] > 0.5)

        try:
            calibrate(self.served_dir, studies(), output_dir=os.path.dirname(self.publish_path))
        except ModelNotTrainedError:
            logger.info("Decision threshold not calibrated yet: the other network has no weights")

    def train_handlers(self, context: Context):
        handlers = super().train_handlers(context)
        handlers.append(TimeBudget(float(context.request.get("minutes", 0)), getattr(self, "_job_start", time.time())))
        return handlers
