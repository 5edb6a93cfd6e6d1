"""Which frame of a DICOM NM file shows which view: the SNOMED view codes and the fallbacks.

One home for what the reader, the NM writer and the SR writer must agree on, so a file we write
is read back with the same views and an SR points at the same frames the reader analysed.
Views come from the view codes of the detector items (through DetectorVector), never from frame
order unless the file has no codes, because vendors differ in which detector they store first.
"""

from __future__ import annotations

import re
from typing import List, Optional, Tuple

from pydicom.multival import MultiValue

# SNOMED CT (designator SCT) view codes of the projection, as in CID 26 "Nuclear Medicine Projections".
SCHEME = "SCT"
VIEW_CODES = {"anterior": ("399321004", "anterior projection"), "posterior": ("399001007", "posterior projection")}
VIEW_BY_CODE = {value: view for view, (value, _) in VIEW_CODES.items()}
# Where a single-view file without a code may name its view.
_VIEW_TEXT_ATTRIBUTES = ("SeriesDescription", "ImageComments", "ImageID")


def dicom_text(value) -> str:
    """A DICOM value as one string ('' for None; multi-values joined)."""
    if isinstance(value, MultiValue):
        return "".join(str(v) for v in value)
    return "" if value is None else str(value)


def other_view(view: str) -> str:
    return "posterior" if view == "anterior" else "anterior"


def view_from_text(text: str) -> Optional[str]:
    """'anterior' or 'posterior' when the text names exactly one of them (ANT, POST, ...)."""
    ant = re.search(r"\bANT(ERIOR)?\b", text, re.I) is not None
    post = re.search(r"\bPOST(ERIOR)?\b", text, re.I) is not None
    if ant != post:
        return "anterior" if ant else "posterior"
    return None


def view_from_codes(item) -> Optional[str]:
    """The view named by the first code of ``item``'s ViewCodeSequence (value, else its meaning)."""
    for code in item.get("ViewCodeSequence", None) or []:
        view = VIEW_BY_CODE.get(str(code.get("CodeValue", "")))
        return view or view_from_text(dicom_text(code.get("CodeMeaning", "")))
    return None


def coded_frame_views(ds, n_frames: int) -> List[Optional[str]]:
    """View of each frame from the detector items its DetectorVector entry points at (None: no code)."""
    items = list(ds.get("DetectorInformationSequence", None) or [])
    detector_views = [view_from_codes(item) for item in items]
    vector = ds.get("DetectorVector", None)
    vector = [int(v) for v in vector] if isinstance(vector, (list, tuple)) else ([int(vector)] if vector else [])
    if len(vector) != n_frames:
        vector = list(range(1, n_frames + 1))
    views = [detector_views[d - 1] if 0 < d <= len(detector_views) else None for d in vector]
    if n_frames == 1 and views[0] is None:
        views[0] = view_from_codes(ds)
    return views


def frame_views(ds, n_frames: int) -> Tuple[List[Optional[str]], str, List[str]]:
    """(view of each frame, where that came from, warnings), with the fallbacks filled in.

    Sources: ``view_code``; ``single_view`` (one frame: its code, else its description, else
    anterior); ``frame_order`` (two frames without codes: anterior first). With one of two codes
    missing, that frame takes the other view. Files with more than two frames or a view claimed
    twice are left as coded, for the caller to refuse.
    """
    views = coded_frame_views(ds, n_frames)
    known = [v for v in views if v]
    warnings: List[str] = []
    if len(known) != len(set(known)) or n_frames > 2:
        return views, "view_code", warnings
    if n_frames == 1:
        if views[0] is None:
            text = " ".join(dicom_text(ds.get(k, "")) for k in _VIEW_TEXT_ATTRIBUTES)
            views[0] = "posterior" if view_from_text(text) == "posterior" else "anterior"
            warnings.append(f"single frame without a view code taken as {views[0]}")
        return views, "single_view", warnings
    if not known:
        warnings.append("no view codes; frame 1 taken as anterior and frame 2 as posterior")
        return ["anterior", "posterior"], "frame_order", warnings
    if len(known) == 1:
        views = [v or other_view(known[0]) for v in views]
        warnings.append(f"one frame has no view code; taken as {other_view(known[0])}")
    return views, "view_code", warnings
