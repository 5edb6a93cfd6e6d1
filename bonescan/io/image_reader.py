"""Read 8-bit PNG/JPEG bone scan exports (BS-80K style) as a canonical Study.

Two layouts: a pair of files named like ``case_ant.png`` / ``case_post.png`` (also ``_anterior``,
``_A``, ``-ANT``, ... any case), or one image twice as high as wide holding anterior (left half)
and posterior (right half) side by side. Assumption: the posterior is stored as seen from behind,
as cameras store it, and is mirrored; only when the stored posterior already matches the anterior
clearly better than its mirror image is it taken as already mirrored (with a warning).
Pixel values are display intensities, not counts.
"""

from __future__ import annotations

import pathlib
import re
from typing import List, Tuple

import numpy as np
from PIL import Image
from scipy import ndimage

from bonescan.errors import BoneScanInputError
from bonescan.io.canonical import build_study, check_frames
from bonescan.study import Study

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_TAGGED = re.compile(r"^(?P<base>.+?)(?P<sep>[_\-. ])(?P<tag>anterior|posterior|ant|post|a|p)$", re.I)
NOT_COUNTS = "pixel values are image intensities, not counts; total_counts are pixel sums"


def _view_of_tag(tag: str) -> str:
    return "anterior" if tag.lower().startswith("a") else "posterior"


def _load(path) -> Tuple[np.ndarray, List[str]]:
    """Grey-level pixels as float; colour images are converted to grey (with a warning)."""
    try:
        with Image.open(path) as image:
            image.load()
            warnings = []
            if image.mode not in ("L", "I", "I;16", "I;16B", "I;16L", "F"):
                warnings.append(f"{pathlib.Path(path).name}: {image.mode} image converted to grey levels")
                image = image.convert("L")
            return np.asarray(image, dtype=np.float64), warnings
    except FileNotFoundError:
        raise
    except Exception as exc:  # PIL raises UnidentifiedImageError, OSError, SyntaxError...
        raise BoneScanInputError(path, f"not a readable image file ({type(exc).__name__}: {exc})",
                                 "give an 8-bit PNG or JPEG export, 256 x 1024 per view") from None


def find_partner(path) -> Tuple[pathlib.Path, str]:
    """(partner file, view of ``path``) for a file named with a view suffix; error if none."""
    path = pathlib.Path(path)
    match = _TAGGED.match(path.stem)
    if not match:
        raise BoneScanInputError(path, "the file name does not say which view it holds",
                                 "name the pair like case_ant.png / case_post.png, or give one image with both views side by side")
    view = _view_of_tag(match["tag"])
    candidates = []
    for other in sorted(path.parent.iterdir()):
        m = _TAGGED.match(other.stem)
        if (other.suffix.lower() in IMAGE_SUFFIXES and m and m["base"] == match["base"]
                and m["sep"] == match["sep"] and _view_of_tag(m["tag"]) != view):
            candidates.append(other)
    if not candidates:
        other = "posterior" if view == "anterior" else "anterior"
        raise BoneScanInputError(path, f"the {other} image of this pair is missing",
                                 f"put {match['base']}{match['sep']}{'post' if other == 'posterior' else 'ant'}{path.suffix} next to it")
    candidates.sort(key=lambda p: p.suffix.lower() != path.suffix.lower())
    return candidates[0], view


def posterior_needs_flip(anterior: np.ndarray, posterior: np.ndarray) -> bool:
    """False only when the stored posterior clearly matches the anterior better unmirrored."""
    a = ndimage.gaussian_filter(anterior, 4).ravel()
    p = ndimage.gaussian_filter(posterior, 4)
    with np.errstate(invalid="ignore", divide="ignore"):  # a flat view has no correlation (NaN)
        same = np.corrcoef(a, p.ravel())[0, 1]
        mirrored = np.corrcoef(a, p[:, ::-1].ravel())[0, 1]
    return not (same > mirrored + 0.05)


def read_image(path) -> Study:
    """Read a PNG/JPEG export (pair or side by side) as a canonical Study."""
    path = pathlib.Path(path)
    pixels, warnings = _load(path)
    rows, columns = pixels.shape
    if rows == 2 * columns:
        anterior, posterior = pixels[:, : columns // 2], pixels[:, columns // 2:]
        view_source = "side_by_side"
    else:
        partner, view = find_partner(path)
        other, more = _load(partner)
        warnings += more
        if other.shape != pixels.shape:
            raise BoneScanInputError(path, f"its partner {partner.name} has size {other.shape}, not {pixels.shape}",
                                     "both views must come from the same export")
        anterior, posterior = (pixels, other) if view == "anterior" else (other, pixels)
        view_source = "file_name"
    frames = np.stack([anterior, posterior])
    check_frames(path, frames)
    flip = posterior_needs_flip(anterior, posterior)
    if not flip:
        warnings.append("posterior image looks already mirrored into the anterior orientation; not flipped")
    warnings.append(NOT_COUNTS)
    return build_study(path, frames, ["anterior", "posterior"], None,
                       view_source=view_source, posterior_flipped=flip, warnings=warnings)
