"""A resumable, time-bounded training loop for either network, with validation and publishing.

Every ``val_every`` iterations the model is validated on whole studies; weights are published to
``model_dir/<kind>.safetensors`` only when the validation metric did not get worse, so a serving model is
never replaced by a worse one. The full state (model, optimiser, iteration, best metric,
history) is checkpointed at each validation: a run stopped at any time resumes where it was.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from monai.data import DataLoader, Dataset, list_data_collate
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from bonescan.io.atomic import atomic_path
from bonescan.labels import BLADDER, LESION
from bonescan.networks import build_classifier, build_segmenter, resolve_bf16, split_view_logits
from bonescan.training import recipes
from bonescan.versions import publish_weights, served_record
from bonescan.weights import load_into, weights_file

logger = logging.getLogger(__name__)


@dataclass
class RunConfig:
    kind: str  # "segmentation" or "classification"
    model_dir: Path  # where weights are published
    work_dir: Path  # checkpoints, history, curves
    minutes: float = 20.0
    max_iterations: Optional[int] = None
    batch_size: int = 4  # studies per step (segmentation takes 2 crops of each)
    lr: float = 5e-4
    val_every: int = 100
    patience: int = 8  # validations without improvement before stopping early
    bf16: Optional[bool] = None  # None: bf16 only where the hardware makes it fast
    workers: int = 1
    seed: int = 0
    start_dir: Optional[Path] = None  # whose served weights a new run starts from (default: model_dir)
    extra: Dict = field(default_factory=dict)


def build_network(kind: str) -> torch.nn.Module:
    return build_segmenter() if kind == "segmentation" else build_classifier()


def autocast(enabled: bool):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.autocast(device, dtype=torch.bfloat16, enabled=enabled)


def _loader(kind: str, examples: List[Dict], batch_size: int, workers: int) -> DataLoader:
    transforms = recipes.segmentation_train_transforms() if kind == "segmentation" else recipes.classification_train_transforms()
    dataset = Dataset(examples, transforms)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        collate_fn=list_data_collate,
        persistent_workers=workers > 0,
        drop_last=len(examples) > batch_size,
    )


class StepTimer:
    """Where a training step's time goes (data preparation and augmentation, forward, backward,
    optimiser) and examples per second: the profile that decides what to make cheaper."""

    PHASES = ("data", "forward", "backward", "optimiser")

    def __init__(self):
        self.seconds = dict.fromkeys(self.PHASES, 0.0)
        self.steps = 0
        self.examples = 0

    def add(self, phase: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[phase] += now - since
        if phase == self.PHASES[-1]:
            self.steps += 1
        return now

    def summary(self) -> Dict[str, float]:
        total = sum(self.seconds.values())
        steps = max(self.steps, 1)
        out = {f"{phase}_s": round(value / steps, 4) for phase, value in self.seconds.items()}
        out["examples_per_s"] = round(self.examples / total, 2) if total else 0.0
        return out

    def describe(self) -> str:
        total = sum(self.seconds.values()) or 1.0
        parts = ", ".join(f"{phase} {value / max(self.steps, 1):.3f} s ({100 * value / total:.0f} %)"
                          for phase, value in self.seconds.items())
        return f"{parts}; {self.summary()['examples_per_s']} examples/s"


def _forever(loader):
    while True:
        for batch in loader:
            yield batch


@torch.inference_mode()
def validate(kind: str, network: torch.nn.Module, examples: List[Dict], bf16: bool, device) -> Dict[str, float]:
    """Whole-study metrics: pooled lesion and bladder Dice, or AUC and accuracy."""
    network.eval()
    if kind == "segmentation":
        transforms = recipes.segmentation_val_transforms()
        sums = {name: np.zeros(3) for name in ("lesion", "bladder")}
        for example in examples:
            item = transforms(example)
            x = item["image"][None].to(device).contiguous(memory_format=torch.channels_last)
            with autocast(bf16):
                logits = network(x)
            pred = split_view_logits(logits.float())[0].argmax(dim=1).cpu().numpy()
            truth = item["label"].numpy()
            for name, value in (("lesion", LESION), ("bladder", BLADDER)):
                d = recipes.pooled_dice(pred, truth, value)
                sums[name] += (d["intersection"], d["pred"], d["truth"])
        metrics = {f"{name}_dice": float(2 * s[0] / max(s[1] + s[2], 1.0)) for name, s in sums.items()}
        metrics["key"] = 0.5 * (metrics["lesion_dice"] + metrics["bladder_dice"])
        return metrics
    transforms = recipes.classification_val_transforms()
    scores, truth = [], []
    for example in examples:
        item = transforms(example)
        with autocast(bf16):
            logits = network(item["image"][None].to(device).contiguous(memory_format=torch.channels_last))
        scores.append(float(torch.softmax(logits.float(), dim=1)[0, 1]))
        truth.append(int(item["metastatic"]))
    scores, truth = np.array(scores), np.array(truth)
    accuracy = float(np.mean((scores >= 0.5) == truth))
    auc = float(roc_auc_score(truth, scores)) if len(set(truth.tolist())) == 2 else float("nan")
    return {"auc": auc, "accuracy": accuracy, "key": auc if not math.isnan(auc) else accuracy}


def publish(network: torch.nn.Module, config: RunConfig, record: Dict, trained_on: int, validated_on: int,
            started_from: str) -> Path:
    """Write the weights the server and batch jobs load, with their version record."""
    path = weights_file(config.model_dir, config.kind)
    metrics = {k: v for k, v in record.items() if k not in ("iteration", "seconds", "train_loss", "lr", "key", "step_split")}
    metrics["key"] = record["key"]
    publish_weights(network, path, key_metric="key", metrics=metrics, trained_on=trained_on, validated_on=validated_on,
                    source="scripts/train.py", iteration=record["iteration"], started_from=started_from,
                    previous=served_record(config.model_dir, config.kind) or served_record(config.start_dir or config.model_dir,
                                                                                          config.kind))
    return path


def _initial_weights(network, config: RunConfig) -> str:
    """Start from the published weights when they exist: training is incremental."""
    record = served_record(config.start_dir or config.model_dir, config.kind)
    if record is None:
        return "scratch"
    load_into(network, record["weights"], record.get("sha256"))
    return f"{record['weights']} (version {record.get('version', 0)})"


def plot_history(history: List[Dict], path: Path, kind: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = [h["iteration"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax1.plot(its, [h["train_loss"] for h in history])
    ax1.set(xlabel="iteration", ylabel="training loss", title=f"{kind}: loss")
    keys = ["lesion_dice", "bladder_dice"] if kind == "segmentation" else ["auc", "accuracy"]
    for key in keys:
        ax2.plot(its, [h.get(key, np.nan) for h in history], marker="o", label=key)
    ax2.set(xlabel="iteration", ylabel="validation", title=f"{kind}: validation", ylim=(0, 1))
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def train(config: RunConfig, train_examples: List[Dict], val_examples: List[Dict], progress: bool = True) -> Dict:
    """Train until the time budget, ``max_iterations`` or early stopping; returns a summary."""
    torch.manual_seed(config.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config.work_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = config.work_dir / f"{config.kind}_checkpoint.pt"
    history_path = config.work_dir / f"{config.kind}_history.json"

    network = build_network(config.kind).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=2)
    state = {"iteration": 0, "best": -1.0, "stale": 0, "history": [], "start": "scratch", "seconds": 0.0}
    if checkpoint_path.exists():
        saved = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        network.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state = saved["state"]
        logger.info(f"{config.kind}: resuming at iteration {state['iteration']}")
    else:
        state["start"] = _initial_weights(network, config)

    bf16 = resolve_bf16(config.bf16, device.type)
    logger.info(f"{config.kind}: {'bf16 autocast' if bf16 else 'float32'} on {device.type}")
    loss_fn = recipes.ViewDiceCELoss() if config.kind == "segmentation" else torch.nn.CrossEntropyLoss(label_smoothing=0.05)
    batches = _forever(_loader(config.kind, train_examples, config.batch_size, config.workers))
    deadline = time.time() + config.minutes * 60
    started = time.time()
    seconds_before = state["seconds"]
    losses: List[float] = []
    stop_reason = "time budget"
    split = StepTimer()
    # In a log file (no terminal) a bar line every 30 s, not one per iteration.
    bar = tqdm(desc=f"train {config.kind}", unit="it", disable=not progress, initial=state["iteration"],
               mininterval=0.1 if sys.stderr.isatty() else 30.0)
    while True:
        if time.time() >= deadline:
            break
        if config.max_iterations is not None and state["iteration"] >= config.max_iterations:
            stop_reason = "max iterations"
            break
        network.train()
        clock = time.perf_counter()
        batch = next(batches)
        x = batch["image"].to(device).contiguous(memory_format=torch.channels_last)
        y = (batch["label"] if config.kind == "segmentation" else batch["metastatic"]).to(device)
        clock = split.add("data", clock)
        with autocast(bf16):
            logits = network(x)
        loss = loss_fn(logits.float(), y)
        clock = split.add("forward", clock)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clock = split.add("backward", clock)
        optimizer.step()
        losses.append(loss.item())
        split.add("optimiser", clock)
        split.examples += int(x.shape[0])
        state["iteration"] += 1
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", best=f"{state['best']:.3f}", refresh=False)

        if state["iteration"] % config.val_every == 0:
            metrics = validate(config.kind, network, val_examples, bf16, device)
            scheduler.step(metrics["key"])
            state["seconds"] = seconds_before + time.time() - started
            record = {
                "iteration": state["iteration"],
                "seconds": round(state["seconds"], 1),
                "train_loss": float(np.mean(losses)) if losses else float("nan"),
                "lr": optimizer.param_groups[0]["lr"],
                **metrics,
                "step_split": split.summary(),
            }
            logger.info(f"{config.kind} time per step: {split.describe()}")
            split = StepTimer()
            losses = []
            state["history"].append(record)
            improved = metrics["key"] >= state["best"]
            if improved:
                state["best"], state["stale"] = metrics["key"], 0
                publish(network, config, record, len(train_examples), len(val_examples), state["start"])
            else:
                state["stale"] += 1
            logger.info(f"{config.kind} validation {record} {'(published)' if improved else ''}")
            _save_checkpoint(checkpoint_path, network, optimizer, scheduler, state)
            history_path.write_text(json.dumps(state["history"], indent=2))
            plot_history(state["history"], config.work_dir / f"{config.kind}_curve.png", config.kind)
            if state["stale"] >= config.patience:
                stop_reason = "early stopping"
                break
    bar.close()
    state["seconds"] = seconds_before + time.time() - started
    _save_checkpoint(checkpoint_path, network, optimizer, scheduler, state)
    return {"kind": config.kind, "iterations": state["iteration"], "best": state["best"], "stopped": stop_reason,
            "seconds": round(state["seconds"], 1), "history": str(history_path)}


def _save_checkpoint(path: Path, network, optimizer, scheduler, state) -> None:
    with atomic_path(path) as tmp:
        torch.save({"model": network.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "state": state}, tmp)
