#!/usr/bin/env python
"""Simulated active learning on phantoms: does each strategy beat random?

    python scripts/simulate_active_learning.py --pool 20 --test 6 --rounds 2 --minutes-per-round 0.2 \\
        --strategies random,uncertainty,epistemic,diversity --output runs/al_tiny         # proves it runs
    python scripts/simulate_active_learning.py --pool 300 --test 80 --rounds 6 --minutes-per-round 6 \\
        --repeats 3 --output runs/al                                                     # an answer (GPU or hours)

The phantoms' ground truth plays the physician. All strategies start from the same ``--initial``
labelled studies and the same weights (trained on them for ``--minutes-per-round``, from scratch
or, with ``--start-from``, from given weights such as the served models); each round,
each strategy scores the unlabelled pool with *its own* current networks, picks ``--per-round``
studies with the selection functions the server uses (``bonescan.selection``, scores
from ``bonescan.embeddings``, as the ``/scoring`` jobs compute them), trains briefly from its
previous weights on everything it has labelled, and is evaluated on a separate test set: pooled
lesion and bladder Dice of the served label map and case accuracy / AUC of the served decision
rule (``decision_score(classifier, lesion evidence) >= threshold``, bonescan.analysis).

Fair compute: round 0 runs for ``--minutes-per-round``; the number of iterations it reached is
then the budget of every later round for every strategy (a time budget would favour whichever
strategy ran while the machine was less busy). Each strategy has its own model and work folder.

Outputs in --output: ``learning_curves.json`` (every point, the picks, the verdict),
``learning_curves.png`` (lesion Dice and case accuracy vs number of labelled studies, one line per
strategy; mean +- sd over repeats), and the table printed at the end. "Beats random" compares the
mean over rounds 1..R of each metric with random's (per repeat; a difference within noise is not
a win: with one repeat at tiny settings nothing can be concluded).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bonescan.analysis import Analyser, load_network, study_result  # noqa: E402
from bonescan.decision import DECISION_THRESHOLD  # noqa: E402
from bonescan.embeddings import case_scores, classify_with_embedding, mc_dropout_uncertainty  # noqa: E402
from bonescan.io.atomic import atomic_path  # noqa: E402
from bonescan.labels import BLADDER, LESION  # noqa: E402
from bonescan.selection import pick_diverse, pick_highest, pick_uncertain  # noqa: E402
from bonescan.study import Study, StudyMeta  # noqa: E402
from bonescan.training.loop import RunConfig, build_network, train  # noqa: E402
from bonescan.training.pool import build_phantom_pool, load_examples  # noqa: E402
from bonescan.training.recipes import pooled_dice  # noqa: E402
from bonescan.versions import publish_weights  # noqa: E402
from bonescan.weights import served_weights, weights_file  # noqa: E402

STRATEGIES = ("random", "uncertainty", "epistemic", "diversity")
KINDS = ("segmentation", "classification")
BATCH = {"segmentation": 4, "classification": 16}
logger = logging.getLogger("simulate_active_learning")


def study_of(example: Dict) -> Study:
    return Study(np.ascontiguousarray(example["image"], dtype=np.float32), StudyMeta(source_file=example["id"]))


def load_analyser(model_dir: Path) -> Analyser:
    networks = {k: load_network(k, model_dir).to(memory_format=torch.channels_last) for k in KINDS}
    return Analyser(networks["classification"], networks["segmentation"])


# ------------------------------------------------------------------ training


def train_briefly(model_dir: Path, work_dir: Path, examples: List[Dict], minutes: float, iterations, seed: int, shares) -> Dict:
    """Both networks, from the weights in ``model_dir`` (or scratch), then publish the final weights there."""
    done = {}
    for kind in KINDS:
        kind_work = work_dir / kind
        if kind_work.exists():
            shutil.rmtree(kind_work)  # a fresh run that starts from model_dir, not a resumed one
        config = RunConfig(
            kind=kind, model_dir=model_dir, work_dir=kind_work,
            minutes=minutes * shares[kind] if iterations is None else max(minutes * 20, 5.0),
            max_iterations=None if iterations is None else max(1, int(iterations[kind])),
            batch_size=min(BATCH[kind], len(examples)), val_every=10**9, patience=10**9, workers=0, seed=seed,
        )
        summary = train(config, examples, [], progress=False)
        state = torch.load(kind_work / f"{kind}_checkpoint.pt", map_location="cpu", weights_only=False)
        network = build_network(kind)
        network.load_state_dict(state["model"])
        publish_weights(network, weights_file(model_dir, kind), key_metric="iterations",
                        metrics={"iterations": summary["iterations"]}, trained_on=len(examples), validated_on=0,
                        source="scripts/simulate_active_learning.py")
        done[kind] = summary["iterations"]
    return done


# ------------------------------------------------------------------ evaluation


def evaluate(model_dir: Path, test: List[Dict]) -> Dict[str, float]:
    """What the server serves: the post-processed label map and the case decision, on the test set."""
    from sklearn.metrics import roc_auc_score

    analyser = load_analyser(model_dir)
    sums = {LESION: np.zeros(3), BLADDER: np.zeros(3)}
    scores, truth = [], []
    for example in test:
        study = study_of(example)
        labels, lesion_probability = analyser.segment(study)
        for value in sums:
            d = pooled_dice(labels, example["label"], value)
            sums[value] += (d["intersection"], d["pred"], d["truth"])
        served = study_result(study, analyser.classify(study), labels, lesion_probability, analyser.threshold)
        scores.append(served["metastasis_probability"])
        truth.append(int(example["metastatic"]))
    scores, truth = np.array(scores), np.array(truth)
    decided = scores >= analyser.threshold
    dice = {v: float(2 * s[0] / max(s[1] + s[2], 1.0)) for v, s in sums.items()}
    both = len(set(truth.tolist())) == 2
    return {
        "lesion_dice": round(dice[LESION], 4),
        "bladder_dice": round(dice[BLADDER], 4),
        "accuracy": round(float(np.mean(decided == truth)), 4),
        "sensitivity": round(float(decided[truth == 1].mean()), 4) if (truth == 1).any() else None,
        "specificity": round(float((~decided[truth == 0]).mean()), 4) if (truth == 0).any() else None,
        "auc": round(float(roc_auc_score(truth, scores)), 4) if both else None,
    }


# ------------------------------------------------------------------ selection (the server's functions)


def select(strategy: str, model_dir: Path, pool: List[Dict], labelled: List[int], k: int, rng, args) -> Dict:
    taken = set(labelled)
    unlabelled = [i for i in range(len(pool)) if i not in taken]
    if args.max_candidates and len(unlabelled) > args.max_candidates:
        unlabelled = sorted(rng.choice(unlabelled, args.max_candidates, replace=False).tolist())
    ids = {pool[i]["id"]: i for i in unlabelled}
    start = time.time()
    if strategy == "random":
        chosen = [pool[i]["id"] for i in rng.choice(unlabelled, min(k, len(unlabelled)), replace=False)]
    elif strategy == "uncertainty":
        analyser = load_analyser(model_dir)
        probabilities = {pool[i]["id"]: case_scores(analyser, study_of(pool[i]))["metastasis_probability"] for i in unlabelled}
        chosen = pick_uncertain(probabilities, DECISION_THRESHOLD, k)
    elif strategy == "epistemic":
        segmenter = load_network("segmentation", model_dir).to(memory_format=torch.channels_last)
        scores = {pool[i]["id"]: mc_dropout_uncertainty(segmenter, study_of(pool[i]), passes=args.mc_passes)["score"]
                  for i in unlabelled}
        chosen = pick_highest(scores, k)
    elif strategy == "diversity":
        classifier = load_network("classification", model_dir)
        classifier = classifier.to(memory_format=torch.channels_last)
        embed = {pool[i]["id"]: classify_with_embedding(classifier, study_of(pool[i]))[1] for i in unlabelled}
        reference = [classify_with_embedding(classifier, study_of(pool[i]))[1] for i in labelled]
        chosen = pick_diverse(embed, reference, k)
    else:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    return {"indices": [ids[c] for c in chosen], "ids": chosen, "scoring_seconds": round(time.time() - start, 1)}


# ------------------------------------------------------------------ one simulated labelling campaign


def initial_set(pool: List[Dict], n: int, rng) -> List[int]:
    """``n`` random studies, with both a normal and a metastatic one when the pool has both."""
    order = rng.permutation(len(pool)).tolist()
    chosen = order[:n]
    classes = {int(pool[i]["metastatic"]) for i in chosen}
    if len(classes) == 1 and n >= 2:
        other = next((i for i in order[n:] if int(pool[i]["metastatic"]) not in classes), None)
        if other is not None:
            chosen[-1] = other
    return sorted(chosen)


def run_repeat(repeat: int, pool: List[Dict], test: List[Dict], strategies: List[str], args, out: Path, save,
               background: List[Dict] = ()) -> Dict:
    """One campaign; ``background`` studies (phantoms, as the server's retraining adds) join every training set."""
    background = list(background)
    seed = args.seed + repeat
    rng = np.random.default_rng(seed)
    root = out / f"repeat_{repeat}"
    shares = {"segmentation": args.segmentation_share, "classification": 1 - args.segmentation_share}
    labelled0 = initial_set(pool, args.initial, rng)
    init_model = root / "initial" / "model"
    for kind in KINDS:
        for suffix in (".safetensors", ".json"):
            (init_model / f"{kind}{suffix}").unlink(missing_ok=True)
        if args.start_from:  # e.g. the served models: the loop fine-tunes what physicians already use
            init_model.mkdir(parents=True, exist_ok=True)
            served = served_weights(args.start_from, kind)
            for source in (served, served.with_suffix(".json")):
                shutil.copyfile(source, init_model / source.name)
    start = time.time()
    budget = train_briefly(init_model, root / "initial" / "work", [pool[i] for i in labelled0] + background,
                           args.minutes_per_round,
                           None, seed, shares)
    logger.info(f"repeat {repeat}: round 0 on {len(labelled0)} studies, {budget} iterations in {time.time() - start:.0f} s")
    point0 = {"round": 0, "labels": len(labelled0), **evaluate(init_model, test), "picked": [pool[i]["id"] for i in labelled0],
              "picked_metastatic": int(sum(pool[i]["metastatic"] for i in labelled0))}
    curves = {s: [dict(point0)] for s in strategies}
    state = {}
    for s in strategies:
        model_dir = root / s / "model"
        if model_dir.exists():
            shutil.rmtree(model_dir)
        shutil.copytree(init_model, model_dir)
        state[s] = {"labelled": list(labelled0), "rng": np.random.default_rng([seed, STRATEGIES.index(s)])}
    result = {"repeat": repeat, "seed": seed, "iterations_per_round": budget, "curves": curves}
    save(result)
    for r in range(1, args.rounds + 1):
        for s in strategies:
            st, model_dir = state[s], root / s / "model"
            if len(st["labelled"]) >= len(pool):
                continue
            picked = select(s, model_dir, pool, st["labelled"], args.per_round, st["rng"], args)
            st["labelled"] = sorted(st["labelled"] + picked["indices"])
            t0 = time.time()
            train_briefly(model_dir, root / s / "work", [pool[i] for i in st["labelled"]] + background, args.minutes_per_round,
                          budget, seed + r, shares)
            train_seconds = time.time() - t0
            point = {"round": r, "labels": len(st["labelled"]), **evaluate(model_dir, test), "picked": picked["ids"],
                     "picked_metastatic": int(sum(pool[i]["metastatic"] for i in picked["indices"])),
                     "scoring_seconds": picked["scoring_seconds"], "train_seconds": round(train_seconds, 1)}
            curves[s].append(point)
            logger.info(f"repeat {repeat} round {r} {s}: {len(st['labelled'])} labels, lesion Dice {point['lesion_dice']:.3f}, "
                        f"accuracy {point['accuracy']:.3f} (picked {point['picked_metastatic']}/{len(picked['ids'])} metastatic)")
            save(result)
    return result


# ------------------------------------------------------------------ summary, plot, table


METRICS = ("lesion_dice", "accuracy")


def mean_curves(repeats: List[Dict], strategies: List[str]) -> Dict:
    out = {}
    for s in strategies:
        rounds = min(len(rep["curves"][s]) for rep in repeats)
        points = []
        for r in range(rounds):
            entry = {"labels": repeats[0]["curves"][s][r]["labels"]}
            for m in ("lesion_dice", "bladder_dice", "accuracy", "auc"):
                values = [rep["curves"][s][r].get(m) for rep in repeats]
                values = np.array([v for v in values if v is not None], dtype=float)
                entry[m] = round(float(values.mean()), 4) if values.size else None
                entry[f"{m}_sd"] = round(float(values.std()), 4) if values.size else None
            points.append(entry)
        out[s] = points
    return out


def verdict(repeats: List[Dict], strategies: List[str]) -> Dict:
    """Per strategy and metric: mean over rounds >= 1 minus random's, per repeat, and how often it was ahead."""
    if "random" not in strategies:
        return {"note": "random is not among the strategies: nothing to compare with"}
    out = {}
    for s in strategies:
        if s == "random":
            continue
        out[s] = {}
        for m in METRICS:
            diffs = []
            for rep in repeats:
                mine = [p[m] for p in rep["curves"][s][1:] if p.get(m) is not None]
                base = [p[m] for p in rep["curves"]["random"][1:] if p.get(m) is not None]
                n = min(len(mine), len(base))
                if n:
                    diffs.append(float(np.mean(mine[:n]) - np.mean(base[:n])))
            if not diffs:
                out[s][m] = {"difference": None, "beats_random": None}
                continue
            mean, sd = float(np.mean(diffs)), float(np.std(diffs, ddof=1)) if len(diffs) > 1 else float("nan")
            ahead = sum(d > 0 for d in diffs)
            clear = len(diffs) > 1 and mean > 0 and ahead == len(diffs) and mean > sd / np.sqrt(len(diffs))
            out[s][m] = {"difference": round(mean, 4), "sd": None if np.isnan(sd) else round(sd, 4),
                         "repeats_ahead": f"{ahead}/{len(diffs)}",
                         "beats_random": "yes" if clear else ("no" if len(diffs) > 1 else "undecided (1 repeat)")}
    return out


def plot(curves: Dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric, label in zip(axes, METRICS, ("lesion Dice (test set)", "case accuracy (test set)")):
        for s, points in curves.items():
            x = [p["labels"] for p in points]
            y = np.array([np.nan if p[metric] is None else p[metric] for p in points])
            sd = np.array([0.0 if p[f"{metric}_sd"] is None else p[f"{metric}_sd"] for p in points])
            line, = ax.plot(x, y, marker="o", label=s, linestyle="--" if s == "random" else "-")
            if np.any(sd > 0):
                ax.fill_between(x, y - sd, y + sd, color=line.get_color(), alpha=0.15)
        ax.set(xlabel="labelled studies", ylabel=label, ylim=(0, 1))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def table(curves: Dict) -> str:
    strategies = list(curves)
    header = f"{'labels':>6} | " + " | ".join(f"{s[:11]:>11} Dice/acc" for s in strategies)
    lines = [header, "-" * len(header)]
    rounds = max(len(p) for p in curves.values())
    for r in range(rounds):
        labels = next(p[r]["labels"] for p in curves.values() if len(p) > r)
        cells = []
        for s in strategies:
            p = curves[s][r] if len(curves[s]) > r else None
            cells.append(f"{p['lesion_dice']:>9.3f}/{p['accuracy']:.3f}" if p else f"{'-':>15}")
        lines.append(f"{labels:>6} | " + " | ".join(f"{c:>19}" for c in cells))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", type=int, default=200, help="phantom studies the strategies choose from")
    parser.add_argument("--test", type=int, default=60, help="phantom test studies (other seeds)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--initial", type=int, default=5, help="labelled studies at the start")
    parser.add_argument("--per-round", type=int, default=5, help="studies each strategy adds per round")
    parser.add_argument("--minutes-per-round", type=float, default=4.0,
                        help="round 0's training time; sets every round's iterations")
    parser.add_argument("--segmentation-share", type=float, default=0.65)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--repeats", type=int, default=1, help="campaigns with different initial sets and seeds")
    parser.add_argument("--max-candidates", type=int, default=0,
                        help="score at most this many random unlabelled studies per pick (0: all)")
    parser.add_argument("--mc-passes", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--phantom-dir", type=Path, default=REPO / "var" / "al_phantoms")
    parser.add_argument("--phantom-seed", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--background", type=int, default=0,
                        help="phantom studies added to every training round, as the server's retraining adds phantoms")
    parser.add_argument("--start-from", type=Path, default=None,
                        help="model folder whose weights every strategy starts from (default: scratch)")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("bonescan.training.loop").setLevel(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        parser.error(f"unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}")
    if args.pool <= args.initial:
        parser.error("--pool must be larger than --initial")
    args.output.mkdir(parents=True, exist_ok=True)

    started = time.time()
    pool = load_examples(build_phantom_pool(args.phantom_dir / "pool", args.pool, args.phantom_seed, workers=1, progress=False))
    test = load_examples(build_phantom_pool(args.phantom_dir / "test", args.test, args.phantom_seed + 500_000,
                                            workers=1, progress=False))
    background = load_examples(build_phantom_pool(args.phantom_dir / "background", args.background,
                                                  args.phantom_seed + 900_000, workers=1, progress=False)) if args.background else []
    logger.info(f"pool {len(pool)} studies ({int(sum(e['metastatic'] for e in pool))} metastatic), "
                f"test {len(test)} ({int(sum(e['metastatic'] for e in test))} metastatic)")

    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    repeats: List[Dict] = []

    def save(current=None):
        done = repeats + ([current] if current is not None and all(current is not r for r in repeats) else [])
        payload = {"config": config, "strategies": strategies, "repeats": done,
                   "mean": mean_curves(done, strategies) if done else {}, "verdict": verdict(done, strategies) if done else {},
                   "seconds": round(time.time() - started, 1)}
        with atomic_path(args.output / "learning_curves.json") as tmp:
            Path(tmp).write_text(json.dumps(payload, indent=2))
        return payload

    for repeat in range(args.repeats):
        repeats.append(run_repeat(repeat, pool, test, strategies, args, args.output, save, background))
    payload = save()
    title = (f"active learning on phantoms: pool {args.pool}, test {args.test}, "
             f"{args.repeats} repeat(s), {args.minutes_per_round} min/round")
    plot(payload["mean"], args.output / "learning_curves.png", title)
    print(table(payload["mean"]))
    print("\nversus random (mean over rounds 1..R of strategy minus random):")
    for s, by_metric in payload["verdict"].items():
        if isinstance(by_metric, dict):
            print(f"  {s:12s} " + "; ".join(f"{m} {v.get('difference')} -> beats random: {v.get('beats_random')}"
                                             for m, v in by_metric.items()))
    print(f"\nwrote {args.output / 'learning_curves.json'} and {args.output / 'learning_curves.png'} "
          f"in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
