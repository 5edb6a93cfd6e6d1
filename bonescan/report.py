"""The automatic diagnostic report: a few plain sentences a physician can check and edit.

It states only what the analysis measured (lesion count and area, uptake, BSTBI, the decision and
its probability) and says that it is a computer proposal, never a final diagnosis.
"""

from __future__ import annotations

from typing import Dict


def write_report(result: Dict) -> str:
    views = [v for v in ("anterior", "posterior") if v not in result.get("missing_views", [])]
    lines = [f"Whole-body bone scan, {' and '.join(views)} view{'s' if len(views) > 1 else ''} analysed."]
    if result.get("missing_views"):
        lines.append(f"Missing view: {', '.join(result['missing_views'])}; measurements use the available view only.")
    count = result.get("lesion_count", 0)
    if count:
        ratios = [entry["mean_uptake_ratio"] for entry in result.get("lesions", []) if entry.get("mean_uptake_ratio")]
        uptake = f", mean uptake {min(ratios):.1f}-{max(ratios):.1f} x normal bone" if ratios else ""
        lines.append(
            f"{count} focal lesion{'s' if count > 1 else ''} of abnormal uptake segmented "
            f"({result.get('lesion_area_cm2', 0):.1f} cm2{uptake}); BSTBI {result.get('bstbi', 0):.2f}."
        )
    else:
        lines.append("No focal lesion segmented; BSTBI 0.")
    if result.get("bladder_area_cm2", 0) > 0:
        lines.append(f"Bladder activity {result['bladder_area_cm2']:.1f} cm2.")
    probability = result.get("metastasis_probability", 0.0)
    impression = "findings suggestive of bone metastases" if result.get("metastatic") else "no scintigraphic evidence of bone metastases"
    lines.append(f"Impression (computer proposal, to be confirmed by a physician): {impression} (probability {probability:.2f}).")
    return " ".join(lines)
