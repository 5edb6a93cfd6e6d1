#!/usr/bin/env python
"""Time the whole analysis per study (file to JSON) and check that the fast path gives the same answers.

    python scripts/benchmark.py [--studies DIR | --n 50] [--model-dir D | --random-weights] [--warmup 3] [--threads 2]

Two implementations run on the same studies, each in its own fresh process (so that model load
time and peak memory, ru_maxrss, belong to one implementation alone):

- optimised: ``Analyser.from_model_dir`` as the server and batch_infer use it (channels_last, bf16 autocast
  only where the CPU runs bf16 natively: emulated on AVX2 it is 6x slower);
- reference: plain eager float32, default memory format, no autocast.

Per study the clock runs over read_study + Analyser.analyse + json.dumps, after --warmup
studies. Reported: median / p95 / mean seconds, model load seconds, peak RSS, the speed-up, and
the answers compared (metastatic decision flips, max |metastasis_probability| difference, BSTBI
difference, lesion and bladder Dice between the two label maps). The optimised process also
times the stages (read, normalise, classifier, segmenter, post-processing, measure, JSON, label
file) on the first --stages studies. Without --studies, --n phantoms (default 50) are generated
into a temporary folder. Writes benchmark.json into --output (default runs/benchmark).

--random-weights benchmarks freshly initialised networks (speed only, before training has
published weights); every output then says so. Exit 2 when the weights are missing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_MODEL_DIR = REPO / "apps" / "bonescan" / "model"
TARGET_MEDIAN_S = 0.48  # the paper's 0.48 +- 0.07 s per case
IMPLEMENTATIONS = {
    "optimised": "channels_last (+ bf16 autocast where native) (Analyser.from_model_dir)",
    "reference": "eager float32, default memory format, no autocast",
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 2)[2])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--studies", type=Path, help="folder of studies (as batch_infer reads it)")
    source.add_argument("--n", type=int, default=50, help="phantoms to generate when --studies is not given (default 50)")
    parser.add_argument("--seed", type=int, default=4242, help="phantom seed (default %(default)s)")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR, help="default: %(default)s")
    parser.add_argument("--random-weights", action="store_true",
                        help="use freshly initialised networks (speed only; answers are meaningless)")
    parser.add_argument("--warmup", type=int, default=3, help="studies analysed before timing (default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--stages", type=int, default=10, help="studies timed stage by stage (0: skip; default 10)")
    parser.add_argument("--omp-wait-policy", choices=("passive", "active", "inherit"), default="passive",
                        help="OMP_WAIT_POLICY for the timed processes (default passive: on a shared, busy CPU the "
                             "active spin-wait of torch's OpenMP threads costs up to 10x; 'inherit' keeps the environment's)")
    parser.add_argument("--no-reference", action="store_true", help="time only the optimised implementation")
    parser.add_argument("--output", type=Path, default=REPO / "runs" / "benchmark", help="default: %(default)s")
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- child process


def _make_analyser(kind: str, model_dir: Path):
    from bonescan.analysis import Analyser

    if kind == "optimised":
        return Analyser.from_model_dir(model_dir, bf16=None, channels_last=True)

    return Analyser.from_model_dir(model_dir, bf16=False, channels_last=False)  # plain eager float32, NCHW


def _stage_times(analyser, path: Path, scratch: Path) -> dict:
    """One study timed stage by stage, through the same functions Analyser.analyse calls."""
    from bonescan.analysis import classifier_probability, segment_study
    from bonescan.io import read_study, write_labels_npz
    from bonescan.measure import measure

    clock, times = time.perf_counter, {}

    def lap(name, start):
        times[name] = times.get(name, 0.0) + clock() - start
        return clock()

    t = clock()
    study = read_study(path)
    t = lap("read_study", t)
    classifier_probability(analyser.classifier, study, analyser.bf16, analyser.channels_last)
    t = lap("classifier (input, network, softmax)", t)
    labels, lesion_probability = segment_study(analyser.segmenter, study, analyser.bf16, analyser.channels_last)
    t = lap("segmenter (input, network, label map)", t)
    result = measure(study, labels, lesion_probability)
    t = lap("measure", t)
    json.dumps(result)
    t = lap("json", t)
    write_labels_npz(scratch / "stage_labels.npz", labels, study.meta)
    lap("write_labels_npz (batch only)", t)
    return times


def _peak_rss_mib() -> float:
    """Peak resident memory of this process: VmHWM (reset at exec, unlike ru_maxrss, which a spawned
    child inherits from its parent on Linux), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_phase(kind: str, model_dir: str, paths: list, warmup: int, threads: int, stages: int, out_file: str) -> None:
    """Load one implementation, warm up, time every study; write timings, answers and labels to out_file."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from bonescan.io import read_study

    t = time.perf_counter()
    analyser = _make_analyser(kind, Path(model_dir))
    load_seconds = time.perf_counter() - t
    paths = [Path(p) for p in paths]
    for path in (paths * max(1, warmup))[:warmup]:
        analyser.analyse(read_study(path))
    seconds, answers, labels = [], [], []
    for path in paths:
        t = time.perf_counter()
        study = read_study(path)
        label_map, result = analyser.analyse(study)
        json.dumps(result)
        seconds.append(time.perf_counter() - t)
        answers.append({k: result[k] for k in ("metastasis_probability", "metastatic", "classifier_probability", "bstbi",
                                               "lesion_count", "lesion_evidence")})
        labels.append(label_map)
    stage_rows = []
    if stages and kind == "optimised":
        with tempfile.TemporaryDirectory() as scratch:
            stage_rows = [_stage_times(analyser, path, Path(scratch)) for path in paths[:stages]]
    peak_mib = _peak_rss_mib()
    np.savez_compressed(out_file + ".npz", labels=np.stack(labels))
    Path(out_file + ".json").write_text(json.dumps({
        "kind": kind, "load_seconds": load_seconds, "seconds": seconds, "answers": answers, "peak_rss_mib": peak_mib,
        "torch_threads": torch.get_num_threads(), "stages": stage_rows,
        "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }))


# --------------------------------------------------------------------------- parent


def _percentile(values, q):
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _timing(phase: dict) -> dict:
    s = phase["seconds"]
    return {"median_s": statistics.median(s), "p95_s": _percentile(s, 95), "mean_s": statistics.mean(s),
            "min_s": min(s), "max_s": max(s), "load_s": phase["load_seconds"], "peak_rss_mib": phase["peak_rss_mib"],
            "torch_threads": phase["torch_threads"]}


def _dice(a, b):
    total = int(a.sum()) + int(b.sum())
    return (2.0 * int((a & b).sum()) / total) if total else math.nan, int((a & b).sum()), total


def compare(fast: dict, reference: dict, fast_labels, reference_labels) -> dict:
    """How much the optimised answers differ from the float32 reference."""
    import numpy as np

    from bonescan.labels import BLADDER, LESION

    pairs = list(zip(fast["answers"], reference["answers"]))
    flips = sum(a["metastatic"] != b["metastatic"] for a, b in pairs)
    out = {
        "studies": len(pairs),
        "decision_differs": flips,
        "decision_differs_fraction": flips / len(pairs),
        "max_abs_diff_metastasis_probability": max(abs(a["metastasis_probability"] - b["metastasis_probability"]) for a, b in pairs),
        "max_abs_diff_classifier_probability": max(abs(a["classifier_probability"] - b["classifier_probability"]) for a, b in pairs),
        "max_abs_diff_bstbi": max(abs(a["bstbi"] - b["bstbi"]) for a, b in pairs),
        "lesion_count_differs": sum(a["lesion_count"] != b["lesion_count"] for a, b in pairs),
        "pixel_agreement": float((fast_labels == reference_labels).mean()),
    }
    for name, value in (("lesion", LESION), ("bladder", BLADDER)):
        per_study, overlap, total = [], 0, 0
        for a, b in zip(fast_labels, reference_labels):
            d, o, t = _dice(a == value, b == value)
            overlap, total = overlap + o, total + t
            if not math.isnan(d):
                per_study.append(d)
        out[f"{name}_dice_pooled"] = (2.0 * overlap / total) if total else None
        out[f"{name}_dice_min"] = min(per_study) if per_study else None
        out[f"{name}_dice_mean"] = float(np.mean(per_study)) if per_study else None
        out[f"{name}_studies_with_label"] = len(per_study)
    return out


def _spawn(kind, model_dir, paths, args, work: Path) -> dict:
    import multiprocessing

    import numpy as np

    out_file = str(work / kind)
    process = multiprocessing.get_context("spawn").Process(
        target=run_phase, args=(kind, str(model_dir), [str(p) for p in paths], args.warmup, args.threads, args.stages, out_file))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise SystemExit(f"benchmark: the {kind} run failed (exit code {process.exitcode}); see the messages above")
    phase = json.loads(Path(out_file + ".json").read_text())
    with np.load(out_file + ".npz") as data:
        phase["labels"] = data["labels"]
    return phase


def _publish_random_weights(directory: Path) -> None:
    import torch

    from bonescan.networks import build_classifier, build_segmenter

    from bonescan.weights import save_weights, weights_file

    torch.manual_seed(0)
    save_weights(build_classifier(), weights_file(directory, "classification"))
    save_weights(build_segmenter(), weights_file(directory, "segmentation"))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _fmt(value, digits=3):
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.omp_wait_policy != "inherit":
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()  # read by the spawned processes' OpenMP
    from bonescan.weights import served_weights

    with tempfile.TemporaryDirectory(prefix="bonescan-benchmark-") as tmp:
        work = Path(tmp)
        model_dir = args.model_dir
        if args.random_weights:
            model_dir = work / "random_model"
            model_dir.mkdir()
            _publish_random_weights(model_dir)
        else:
            missing = [k for k in ("classification", "segmentation") if served_weights(model_dir, k) is None]
            if missing:
                print(f"benchmark: not trained yet: no weights for {', '.join(missing)} in {model_dir} "
                      "(train first, or add --random-weights to time freshly initialised networks)", file=sys.stderr)
                return 2

        from bonescan.batch import find_studies

        if args.studies:
            if not args.studies.is_dir():
                print(f"benchmark: studies folder {args.studies} not found", file=sys.stderr)
                return 2
            studies_dir = args.studies
        else:
            from bonescan.phantoms.export import write_phantom_set

            studies_dir = work / "phantoms"
            t = time.perf_counter()
            write_phantom_set(studies_dir, n=args.n, seed=args.seed, workers=1, preview=False, progress=False)
            print(f"generated {args.n} phantoms (seed {args.seed}) in {time.perf_counter() - t:.1f} s")
        paths = [s.path for s in find_studies(studies_dir).studies]
        if not paths:
            print(f"benchmark: no studies in {studies_dir}", file=sys.stderr)
            return 2
        if len(paths) < 50:
            print(f"note: only {len(paths)} studies; the benchmark asks for at least 50")

        label = " [RANDOM WEIGHTS: speed only, answers meaningless]" if args.random_weights else ""
        print(f"timing {len(paths)} studies, {args.warmup} warm-up, {args.threads} threads, "
              f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}{label}")
        phases = {"optimised": _spawn("optimised", model_dir, paths, args, work)}
        if not args.no_reference:
            phases["reference"] = _spawn("reference", model_dir, paths, args, work)

    timing = {kind: _timing(phase) for kind, phase in phases.items()}
    report = {
        "weights": "random (freshly initialised; speed only)" if args.random_weights else str(args.model_dir),
        "random_weights": bool(args.random_weights),
        "studies": str(args.studies) if args.studies else f"{args.n} phantoms, seed {args.seed} (generated)",
        "n_studies": len(paths),
        "warmup": args.warmup,
        "threads": args.threads,
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset: libgomp default)"),
        "measured": "read_study + Analyser.analyse + json.dumps per study, after warm-up",
        "implementations": {k: IMPLEMENTATIONS[k] for k in phases},
        "timing": timing,
        "per_study_seconds": {kind: phase["seconds"] for kind, phase in phases.items()},
        "target_median_s": TARGET_MEDIAN_S,
        "target_met": timing["optimised"]["median_s"] < TARGET_MEDIAN_S,
    }
    stage_rows = phases["optimised"]["stages"]
    if stage_rows:
        names = list(stage_rows[0])
        report["stages_median_s"] = {n: statistics.median(r[n] for r in stage_rows) for n in names}
    if "reference" in phases:
        report["speedup_median"] = timing["reference"]["median_s"] / timing["optimised"]["median_s"]
        report["answers"] = compare(phases["optimised"], phases["reference"], phases["optimised"]["labels"],
                                    phases["reference"]["labels"])

    # ---- table
    print()
    print(f"{'implementation':<12} {'median s':>9} {'p95 s':>8} {'mean s':>8} {'load s':>7} {'peak RSS MiB':>13}")
    for kind, t in timing.items():
        print(f"{kind:<12} {t['median_s']:>9.3f} {t['p95_s']:>8.3f} {t['mean_s']:>8.3f} {t['load_s']:>7.2f} {t['peak_rss_mib']:>13.0f}")
    if "speedup_median" in report:
        print(f"speed-up (reference / optimised median): {report['speedup_median']:.2f}x")
    verdict = "MET" if report["target_met"] else "NOT MET"
    print(f"target median < {TARGET_MEDIAN_S} s per study: {verdict}"
          f" (load average {report['load_average_1min']:.1f} on {os.cpu_count()} CPUs){label}")
    if stage_rows:
        print("stages (median over", len(stage_rows), "studies): "
              + ", ".join(f"{n} {v:.3f}" for n, v in report["stages_median_s"].items()))
    if "answers" in report:
        a = report["answers"]
        print(f"bf16 vs fp32{label}: decision differs in {a['decision_differs']}/{a['studies']} studies, "
              f"max |d metastasis_probability| {a['max_abs_diff_metastasis_probability']:.4f}, "
              f"max |d BSTBI| {a['max_abs_diff_bstbi']:.4f}, lesion Dice pooled {_fmt(a['lesion_dice_pooled'])} "
              f"(min {_fmt(a['lesion_dice_min'])}), bladder Dice pooled {_fmt(a['bladder_dice_pooled'])}, "
              f"pixel agreement {a['pixel_agreement']:.4f}")
    args.output.mkdir(parents=True, exist_ok=True)
    from bonescan.batch import write_json

    path = write_json(args.output / "benchmark.json", report)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
