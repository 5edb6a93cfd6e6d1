"""The OHIF 3.13 viewer at /viewer/, from the same origin as the MONAI Label API and the PACS.

- ``/viewer/...``: the prebuilt ``@ohif/app`` dist that ``scripts/fetch_ohif.sh`` unpacks into
  ``var/ohif/dist`` (never in git). The build expects to live at ``/``: its index.html links
  ``/app-config.js`` etc. and its bundles (app and web workers) load chunks from
  ``__webpack_require__.p = "/"``; both are
  rewritten to ``/viewer/`` when served (the files on disk stay as the package ships them).
  Unknown paths without a file extension answer index.html (OHIF's client-side routes).
  Without the dist, ``/viewer/`` answers 404 saying to run ``scripts/fetch_ohif.sh``.
- ``/viewer/app-config.js``: ours (``apps/bonescan/ohif/app-config.js``), not OHIF's.
- ``/viewer/bonescan/<file>``: our runtime mode, extension and panel (plain ES modules in
  ``apps/bonescan/ohif/``), imported by OHIF's module loader from app-config.js.
- ``/bonescan/dicom-web/...``: a small reverse proxy to the ``--studies`` DICOMweb URL (Orthanc
  sends no CORS headers). MONAI Label's own ``/proxy/dicom`` drops query strings (QIDO filters,
  ``includefield``) and request headers (``Accept``), and blocks the event loop, so it is not used.
"""

from __future__ import annotations

import logging
import mimetypes
import re
from functools import lru_cache
from pathlib import Path
from typing import Optional
from urllib.parse import unquote

import httpx
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

logger = logging.getLogger(__name__)

APP_DIR = Path(__file__).resolve().parents[1]  # apps/bonescan
OHIF_SOURCES = APP_DIR / "ohif"
BASE = "/viewer/"
MISSING = "OHIF viewer not fetched: run `bash scripts/fetch_ohif.sh` (make run-pacs does), then restart the server"
# Request/response headers that must not be copied through a proxy.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "host", "content-length", "content-encoding", "accept-encoding"}

# Never sent on to the PACS: our login cookie and API token.
PRIVATE_HEADERS = {"cookie", "authorization"}

# The DICOMweb resources the viewer uses (QIDO-RS, WADO-RS, STOW-RS), nothing else of the PACS's
# API: `/bonescan/dicom-web/..%2F..%2Ftools/shutdown` once reached Orthanc's whole REST API.
_UID = r"[0-9]+(?:\.[0-9]+)*"
_VIEWS = r"/(?:metadata|rendered|thumbnail)"
_TAIL = rf"(?:{_VIEWS})?"
_INSTANCE = rf"/instances/{_UID}(?:/frames/[0-9]+(?:,[0-9]+)*(?:/rendered|/thumbnail)?|/bulk(?:data)?(?:/[0-9A-Fa-f]+)*|{_VIEWS})?"
DICOMWEB_READ = re.compile(
    rf"(?:studies|series|instances)|studies/{_UID}(?:{_TAIL}|/instances|/series(?:/{_UID}(?:{_TAIL}|/instances|{_INSTANCE})?)?)?")
DICOMWEB_STORE = re.compile(rf"studies(?:/{_UID})?")  # STOW-RS


def dicomweb_path(raw: str, method: str) -> str:
    """The DICOMweb path of a proxy request, decoded until stable, or HTTP 403 if it is anything else."""
    path = raw
    for _ in range(4):  # %252F -> %2F -> /
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    pattern = DICOMWEB_STORE if method == "POST" else DICOMWEB_READ
    if "%" in path or "\\" in path or not pattern.fullmatch(path.strip("/")) or len(path) > 1024:
        raise HTTPException(403, f"only DICOMweb requests (QIDO-RS, WADO-RS, STOW-RS on studies/series/instances) "
                                 f"are forwarded to the PACS, not {method} {raw[:200]!r}")
    return path.strip("/")


mimetypes.add_type("application/javascript", ".js")
mimetypes.add_type("application/javascript", ".mjs")
mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/css", ".css")


def _safe_file(root: Path, path: str) -> Optional[Path]:
    """``root/path`` if it is a file inside ``root`` (no ``..`` escapes), else None."""
    candidate = (root / path).resolve()
    try:
        candidate.relative_to(root.resolve())
    except ValueError:
        return None
    return candidate if candidate.is_file() else None


PUBLIC_PATH = b'__webpack_require__.p = "/";'


@lru_cache(maxsize=None)
def _has_public_path(path: str, mtime: float) -> bool:
    """Whether a script of the dist sets webpack's public path (the app bundle and each worker bundle)."""
    with open(path, "rb") as handle:
        return PUBLIC_PATH in handle.read()


@lru_cache(maxsize=16)
def _rewritten(path: str, mtime: float) -> bytes:
    """index.html, app.bundle.css and the bundles of the dist with their root-relative URLs moved under /viewer/."""
    data = Path(path).read_text(encoding="utf-8")
    if path.endswith(".html"):
        data = data.replace('window.PUBLIC_URL="/"', f'window.PUBLIC_URL="{BASE}"')
        data = re.sub(r'(href|src)="/(?!/)', rf'\1="{BASE}', data)
        # The service worker of the build caches for "/" and is of no use here.
        data = re.sub(r'<script[^>]*init-service-worker\.js"></script>', "", data)
    elif path.endswith(".css"):
        data = data.replace("url(/", f"url({BASE}")  # the font
    else:
        data = data.replace('__webpack_require__.p = "/";', f'__webpack_require__.p = "{BASE}";')
    return data.encode("utf-8")


def register_viewer(api: FastAPI, ohif_dir, studies: str) -> None:
    """The viewer routes: OHIF's dist from ``ohif_dir`` (``--conf ohif_dir``), the proxy to ``studies`` if DICOMweb."""
    dist = Path(ohif_dir)
    router = APIRouter(tags=["viewer"])
    no_cache = {"Cache-Control": "no-cache"}

    @router.get("/viewer", include_in_schema=False)
    def viewer_root():
        return RedirectResponse(BASE)

    @router.get("/viewer/app-config.js", include_in_schema=False)
    def app_config():
        return FileResponse(OHIF_SOURCES / "app-config.js", media_type="application/javascript", headers=no_cache)

    @router.get("/viewer/bonescan/{path:path}", include_in_schema=False)
    def our_modules(path: str):
        found = _safe_file(OHIF_SOURCES, path)
        if found is None or found.suffix not in (".js", ".css", ".json"):
            raise HTTPException(404, f"no such viewer module: {path}")
        return FileResponse(found, media_type=mimetypes.guess_type(found.name)[0], headers=no_cache)

    @router.get("/viewer/{path:path}", include_in_schema=False)
    def ohif_files(path: str):
        if not (dist / "index.html").is_file():
            return JSONResponse({"detail": MISSING}, status_code=404)
        found = _safe_file(dist, path) if path else None
        if found is None:
            if "." in path.rsplit("/", 1)[-1]:  # a missing asset, not a client-side route
                raise HTTPException(404, f"not in the OHIF dist: {path}")
            found = dist / "index.html"
        mtime = found.stat().st_mtime
        if found.name in ("index.html", "app.bundle.css") or (found.suffix == ".js" and _has_public_path(str(found), mtime)):
            media = {".html": "text/html", ".css": "text/css"}.get(found.suffix, "application/javascript")
            return Response(_rewritten(str(found), mtime), media_type=media, headers=no_cache)
        return FileResponse(found, media_type=mimetypes.guess_type(found.name)[0])

    studies = str(studies or "")
    dicomweb = studies.rstrip("/") if studies.startswith(("http://", "https://")) else None
    client = httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=5.0), trust_env=False)

    @router.api_route("/bonescan/dicom-web/{path:path}", methods=["GET", "POST"], include_in_schema=False)
    async def dicomweb_proxy(path: str, request: Request):
        if dicomweb is None:
            raise HTTPException(404, "the viewer needs a DICOMweb study store (start with --studies http://.../dicom-web)")
        path = dicomweb_path(path, request.method)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP | PRIVATE_HEADERS}
        headers["accept-encoding"] = "identity"
        upstream = client.build_request(request.method, f"{dicomweb}/{path}", params=request.query_params,
                                        headers=headers, content=await request.body() if request.method == "POST" else None)
        try:
            answer = await client.send(upstream, stream=True)
        except httpx.HTTPError as error:
            raise HTTPException(502, f"PACS {dicomweb} did not answer: {type(error).__name__}: {error}") from error
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
        return StreamingResponse(answer.aiter_raw(), status_code=answer.status_code, headers=kept,
                                 background=BackgroundTask(answer.aclose))

    api.include_router(router)
    if (dist / "index.html").is_file():
        logger.info(f"OHIF viewer at {BASE} (from {dist})")
    else:
        logger.warning(MISSING)
