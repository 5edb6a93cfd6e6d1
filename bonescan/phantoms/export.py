"""Write a phantom set to disk: DICOM studies, truth arrays, a truth table and preview images.

``write_phantom_set`` is what ``scripts/make_phantoms.py`` and the datastore builder call. Every
study is one NM multi-frame DICOM written by ``bonescan.io.dicom_writer`` (about 20 % with the
posterior frame first, about 10 % without image position, for reader robustness), its truth in
``truth/<study_id>.npz`` and one row in ``truth.csv``. Studies are generated in worker processes;
the result does not depend on the number of workers.
"""

from __future__ import annotations

import csv
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from bonescan.phantoms.generator import PhantomStudy, make_phantom, study_seed

CSV_FIELDS = [
    "study_id", "seed", "metastatic", "lesion_count", "superscan", "cold_lesions", "age", "sex", "height_cm", "weight_class",
    "counts_anterior", "counts_posterior", "bstbi", "bstbi_anterior", "bstbi_posterior", "benign_findings", "confounders",
    "lesion_sites", "bladder_visible", "kidneys_visible", "frame_order", "view_codes", "position", "pixel_spacing_row",
    "pixel_spacing_col", "fwhm_mm", "arm_pose", "stress", "dicom", "truth",
]


def file_options(seed: int) -> Dict[str, object]:
    """How a study is stored (frame order, position), drawn from its own seed so it is stable."""
    rng = np.random.default_rng([int(seed), 7])
    posterior_first = rng.random() < 0.2
    return {
        "frame_order": ("posterior", "anterior") if posterior_first else ("anterior", "posterior"),
        "view_codes": True,
        "position": bool(rng.random() >= 0.1),
    }


def write_study(phantom: PhantomStudy, output: Path, options: Optional[dict] = None) -> Dict[str, object]:
    """Write one study's DICOM and truth npz; return its truth.csv row."""
    from bonescan.io.dicom_writer import write_whole_body_nm
    from pydicom.uid import generate_uid

    info = phantom.info
    sid = info["study_id"]
    opts = options or file_options(info["seed"])
    uid = lambda kind: generate_uid(entropy_srcs=[sid, str(info["seed"]), kind])  # noqa: E731 - reproducible UIDs
    dcm = write_whole_body_nm(
        output / f"{sid}.dcm",
        phantom.counts,
        pixel_spacing=tuple(info["pixel_spacing"]),
        patient_id=sid,
        patient_name=f"Phantom^{sid}",
        sex=info["sex"],
        age_years=info["age"],
        study_uid=uid("study"),
        series_uid=uid("series"),
        sop_uid=uid("sop"),
        frame_order=opts["frame_order"],
        view_codes=opts["view_codes"],
        position=opts["position"],
        description="bonescan phantom",
    )
    truth = output / "truth" / f"{sid}.npz"
    np.savez_compressed(truth, lesion=phantom.lesion, bladder=phantom.bladder, skeleton=phantom.skeleton, benign=phantom.benign,
                        confounder=phantom.confounder, region=phantom.region, counts_canonical=phantom.counts,
                        info=np.array(json.dumps(info)))
    row = {k: info.get(k) for k in CSV_FIELDS if k in info}
    row.update({
        "metastatic": int(info["metastatic"]),
        "superscan": int(info["superscan"]),
        "bladder_visible": int(info["bladder_visible"]),
        "kidneys_visible": int(info["kidneys_visible"]),
        "benign_findings": ";".join(info["benign_findings"]),
        "confounders": ";".join(info["confounders"]),
        "stress": ";".join(info.get("stress", [])),
        "lesion_sites": ";".join(f"{k}:{v}" for k, v in sorted(info["lesion_sites"].items())),
        "frame_order": "\\".join(opts["frame_order"]),
        "view_codes": int(opts["view_codes"]),
        "position": int(opts["position"]),
        "pixel_spacing_row": info["pixel_spacing"][0],
        "pixel_spacing_col": info["pixel_spacing"][1],
        "fwhm_mm": info["fwhm_mm"][0],
        "bstbi": round(info["bstbi"], 5),
        "bstbi_anterior": round(info["bstbi_anterior"], 5),
        "bstbi_posterior": round(info["bstbi_posterior"], 5),
        "dicom": dcm.name,
        "truth": f"truth/{sid}.npz",
    })
    return row


def _thumb(phantom: PhantomStudy, factor: int = 4) -> Dict[str, np.ndarray]:
    """Downsampled views (block sums) and lesion outlines for the preview."""
    c = phantom.counts.astype(np.float32)
    h, w = c.shape[1] // factor, c.shape[2] // factor
    small = c.reshape(2, h, factor, w, factor).sum(axis=(2, 4))
    les = phantom.lesion.reshape(2, h, factor, w, factor).any(axis=(2, 4))
    return {"img": small, "lesion": les}


def _job(args):
    index, seed, output, overrides, thumb = args
    overrides = dict(overrides)
    stress = overrides.pop("stress", False)
    s = study_seed(seed, index)
    phantom = make_phantom(s, study_id=f"ph{seed}_{index:05d}", **overrides)
    if stress:
        from bonescan.phantoms.stress import stress_phantom

        phantom = stress_phantom(phantom, s)
    row = write_study(phantom, Path(output))
    return index, row, (_thumb(phantom) if thumb else None), phantom.info


def write_phantom_set(output, n: int = 100, seed: int = 0, workers: int = 2, preview: bool = True, preview_max: int = 60,
                      progress: bool = True, **overrides) -> List[Dict[str, object]]:
    """Generate ``n`` studies into ``output``; returns the truth rows (also in ``truth.csv``).

    ``overrides`` are passed to :func:`make_phantom` (e.g. ``metastatic=True``); ``stress=True``
    pushes each study outside the training ranges (``bonescan.phantoms.stress``). The set depends
    only on ``seed`` and ``n``, not on ``workers``.
    """
    output = Path(output)
    (output / "truth").mkdir(parents=True, exist_ok=True)
    jobs = [(i, int(seed), str(output), overrides, preview and i < preview_max) for i in range(n)]
    rows: List[Optional[dict]] = [None] * n
    thumbs: Dict[int, dict] = {}
    infos: Dict[int, dict] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc="phantoms", unit="study")
    if workers and workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for index, row, thumb, info in pool.map(_job, jobs, chunksize=max(1, min(8, n // (4 * workers) or 1))):
                rows[index], infos[index] = row, info
                if thumb is not None:
                    thumbs[index] = thumb
                if bar:
                    bar.update()
    else:
        for job in jobs:
            index, row, thumb, info = _job(job)
            rows[index], infos[index] = row, info
            if thumb is not None:
                thumbs[index] = thumb
            if bar:
                bar.update()
    if bar:
        bar.close()
    with open(output / "truth.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    if preview and thumbs:
        write_preview(output / "preview.png", thumbs, infos, contours=False)
        write_preview(output / "preview_lesions.png", thumbs, infos, contours=True)
    return rows


def write_preview(path: Path, thumbs: Dict[int, dict], infos: Dict[int, dict], contours: bool = False, per_row: int = 10) -> None:
    """Grid of anterior|posterior pairs with a caption per study (id, age/sex, metastatic, counts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted(thumbs)
    h, w = thumbs[keys[0]]["img"].shape[1:]
    gap, cap = 4, 22
    ncol = min(per_row, len(keys))
    nrow = int(np.ceil(len(keys) / ncol))
    cell_w, cell_h = 2 * w + gap * 3, h + cap
    canvas = np.ones((nrow * cell_h, ncol * cell_w, 3), np.float32)
    for k, key in enumerate(keys):
        r, c = divmod(k, ncol)
        y0, x0 = r * cell_h + cap, c * cell_w + gap
        img = thumbs[key]["img"]
        body = img[img > 0]
        vmax = np.percentile(body, 99.5) if body.size else 1.0
        for v in range(2):
            g = 1.0 - np.clip(img[v] / max(vmax, 1e-6), 0, 1)
            rgb = np.repeat(g[..., None], 3, axis=2)
            if contours:
                les = thumbs[key]["lesion"][v]
                edge = les & ~(np.roll(les, 1, 0) & np.roll(les, -1, 0) & np.roll(les, 1, 1) & np.roll(les, -1, 1))
                rgb[edge] = (1.0, 0.0, 0.0)
            canvas[y0:y0 + h, x0 + v * (w + gap):x0 + v * (w + gap) + w] = rgb
    dpi = 100
    fig = plt.figure(figsize=(canvas.shape[1] / dpi, canvas.shape[0] / dpi), dpi=dpi)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.imshow(canvas, interpolation="nearest")
    ax.axis("off")
    for k, key in enumerate(keys):
        r, c = divmod(k, ncol)
        info = infos[key]
        meta = f"M{info['lesion_count']}" if info["metastatic"] else "neg"
        if info["superscan"]:
            meta = "SUPER"
        text = (f"{info['study_id'].split('_')[-1]} {info['age']:.0f}{info['sex']} {meta}\n"
                f"{info['counts_anterior'] / 1e6:.2f}/{info['counts_posterior'] / 1e6:.2f}M")
        ax.text(c * cell_w + gap, r * cell_h + 1, text, fontsize=5.5, va="top", ha="left",
                color="darkred" if info["metastatic"] else "black")
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
