"""The one check for every image id, label id and label tag before it reaches the file system.

MONAI Label's LocalDatastore joins ids and tags straight into paths: an id such as ``../x`` or
``/etc/passwd`` wrote, overwrote or deleted files outside the datastore, and ``/infer`` analysed
any file on the server. Every datastore method, our routes and MONAI Label's stock routes call
:func:`check_id` (and :func:`inside` for the path they build), so there is one rule to audit.
Refusals are HTTP 422 with a message naming the value and the rule, never a 500.
"""

from __future__ import annotations

import os
import unicodedata

from fastapi import HTTPException

MAX_LENGTH = 128  # DICOM UIDs (DICOMweb image ids) are at most 64 characters
FORBIDDEN = ("/", "\\", ":", "..")


def check_id(value, kind: str = "image id") -> str:
    """``value`` if it is a safe single file-name part, else HTTP 422 saying why.

    Refused: empty or non-text, longer than MAX_LENGTH, control or format characters (NUL, new
    lines), path separators, ``:`` (drive letters, URLs), ``..`` anywhere, a leading dot (hidden
    files: our temporary files and label records start with one) and surrounding spaces.
    """
    if not isinstance(value, str) or not value:
        raise HTTPException(422, f"{kind} is missing or not text: {value!r}")
    if len(value) > MAX_LENGTH:
        raise HTTPException(422, f"{kind} is longer than {MAX_LENGTH} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in value):
        raise HTTPException(422, f"{kind} {value!r} contains control characters")
    for part in FORBIDDEN:
        if part in value:
            raise HTTPException(422, f"{kind} {value!r} contains {part!r}: ids are names in the datastore, not paths")
    if value.startswith(".") or value != value.strip():
        raise HTTPException(422, f"{kind} {value!r} may not start with a dot or a space")
    return value


def inside(folder: str, name: str, kind: str = "path") -> str:
    """``folder/name`` (folder resolved, name normalised) if it is a direct child of ``folder``; else HTTP 422.

    The file itself may be a symbolic link placed there by an admin: our writes replace the link
    (``os.replace``), they never write through it.
    """
    root = os.path.realpath(folder)
    path = os.path.normpath(os.path.join(root, name))
    if os.path.dirname(path) != root:
        raise HTTPException(422, f"{kind} {name!r} resolves outside the datastore")
    return path


# Files the server itself received for one /infer call (an uploaded image, a session's image): the
# only paths /infer accepts instead of a datastore id. Kept in the server process, so the batch
# and scoring subprocesses accept datastore ids only.
_UPLOADS: set = set()


def register_upload(path) -> None:
    if path:
        _UPLOADS.add(os.path.realpath(path))


def forget_upload(path) -> None:
    if path:
        _UPLOADS.discard(os.path.realpath(path))


def is_upload(value) -> bool:
    return isinstance(value, str) and "\0" not in value and os.path.realpath(value) in _UPLOADS


def infer_request(request: dict, datastore) -> tuple:
    """(request for MONAILabelApp.infer, tag to save the result under or None).

    The image must be a datastore id (or a file this server received for the call): MONAI Label
    took any existing path as the image. The id is resolved here to its file, so MONAI Label's own
    "is it a path?" test never looks at the id; saving the result (``save_label``, ``label_tag``)
    is done by :func:`save_result_label`, never under the final (physician's) tag.
    """
    request = dict(request)
    image = request.get("image")
    save = request.pop("save_label", False)
    tag = request.pop("label_tag", "original")
    request["save_label"] = False
    if is_upload(image):
        return request, None
    uri = datastore.get_image_uri(check_id(image))
    if not uri or not os.path.exists(uri):
        raise HTTPException(404, f"image '{image}' is not in the datastore")
    request["image"] = uri
    if not (save is True or str(save).lower() in ("true", "1")):
        return request, None
    if check_id(tag if isinstance(tag, str) else "", "label tag") == "final":
        raise HTTPException(409, "inference results are never saved as the final label (a physician's); "
                                 "use label_tag 'original'")
    return request, tag


def save_result_label(datastore, image_id: str, model: str, result: dict, tag) -> dict:
    """Store an inference result as the label ``tag`` of ``image_id`` (MONAI Label's save_label)."""
    label = result.get("file")
    if tag and label and os.path.exists(label):
        result["label"] = datastore.save_label(image_id, label, tag, {"model": model, "params": result.get("params")})
        result["tag"] = tag
    return result
