"""Safe browser and network defaults for a server beside patient data (README "Security").

MONAI Label 0.8.5 answers every web origin with credentials allowed (a page on another site
could delete studies through a local browser), accepts any Host header (DNS rebinding) and has
no authentication short of a Keycloak server. At start (``secure``) this module:

- puts our checked versions of the stock upload/infer routes in front (``lib.stock_routes``) and
  turns non-JSON params and unknown ids into 4xx answers;
- same origin only: a request from another origin (``Origin``, or ``Sec-Fetch-Site`` cross-site)
  is refused with 403 unless listed in ``--conf allowed_origins`` (comma-separated); CORS never
  allows credentials;
- a Host allow-list (``--conf allowed_hosts``, default: the loopback names and the bind address);
- an optional API token: ``BONESCAN_API_TOKEN`` (environment) or ``--conf api_token_file PATH``.
  Clients send ``Authorization: Bearer <token>``; ``MONAILabelClient.update_auth`` does, and its
  ``auth_token(user, token)`` (3D Slicer's login) gets it from ``/auth/token``; browsers log in at
  ``/auth/login`` (an HttpOnly, SameSite=Strict cookie);
- request bodies over ``--conf max_upload_mb`` (default 64) are refused with 413 before parsing;
- bound to anything but loopback without a token (or MONAI Label's own auth), the server refuses
  to start unless ``--conf insecure_bind true`` says so explicitly.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import sys
from typing import List, Optional
from urllib.parse import parse_qs, urlsplit

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from monailabel.config import settings
from monailabel.interfaces.exception import ImageNotFoundException, LabelNotFoundException
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request

from lib.app_protocol import BoneScanAppProtocol
from lib.options import AppOptions
from lib.stock_routes import register_stock_routes

logger = logging.getLogger(__name__)

LOOPBACK_NAMES = ["localhost", "127.0.0.1", "::1", "[::1]"]
COOKIE = "bonescan_token"
# Reachable without the token: the login itself and static viewer files (no patient data).
PUBLIC_PATHS = ("/auth/", "/auth/token", "/auth/login", "/favicon.ico")
PUBLIC_PREFIXES = ("/viewer", "/static/")


def bind_host(argv: Optional[List[str]] = None) -> str:
    """The address ``monailabel start_server`` binds (``--host``/``-i``; MONAI Label's default 0.0.0.0)."""
    argv = list(sys.argv if argv is None else argv)
    for index, arg in enumerate(argv):
        if arg in ("--host", "-i") and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--host="):
            return arg.split("=", 1)[1]
    return "0.0.0.0"


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def api_token(options: AppOptions) -> Optional[str]:
    """The API token from ``BONESCAN_API_TOKEN`` or the file named by ``--conf api_token_file`` (None: off)."""
    token = os.environ.get("BONESCAN_API_TOKEN", "").strip()
    path = options.api_token_file
    if path:
        with open(path) as handle:
            token = handle.read().strip()
    if token and len(token) < 16:
        raise RuntimeError("the API token must have at least 16 characters (e.g. python -c 'import secrets; "
                           "print(secrets.token_urlsafe(32))')")
    return token or None


def check_bind(host: str, authenticated: bool, insecure_bind: bool) -> None:
    """Refuse to start on a non-loopback address without authentication, unless told explicitly."""
    if is_loopback(host) or authenticated:
        return
    if insecure_bind:
        logger.warning(f"Bound to {host} WITHOUT authentication (--conf insecure_bind true): anyone who reaches "
                       "this address can read, change and delete studies and labels")
        return
    raise RuntimeError(
        f"refusing to serve patient data on {host} without authentication: set BONESCAN_API_TOKEN (or --conf "
        "api_token_file PATH), bind --host 127.0.0.1 behind a reverse proxy, or pass --conf insecure_bind true")


def _deny(status: int, detail: str, headers: Optional[dict] = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class OriginGuard:
    """Refuse cross-origin requests (403) unless their origin is allowed; top-level GET navigation passes."""

    def __init__(self, app, allowed_origins: List[str]):
        self.app = app
        self.allowed = {o.rstrip("/").lower() for o in allowed_origins}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            origin = (headers.get("origin") or "").rstrip("/").lower()
            site = headers.get("sec-fetch-site", "")
            cross = (urlsplit(origin).netloc != headers.get("host", "").lower()) if origin else site in ("cross-site", "same-site")
            navigation = scope["method"] in ("GET", "HEAD") and headers.get("sec-fetch-mode") == "navigate"
            if cross and not navigation and origin not in self.allowed and "*" not in self.allowed:
                return await _deny(403, f"cross-origin request from {origin or site!r} refused; allow an origin "
                                        "with --conf allowed_origins https://host:port")(scope, receive, send)
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes (413) from Content-Length, and chunked ones that grow past it."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = Headers(scope=scope).get("content-length")
        too_large = _deny(413, f"request body larger than {self.limit // (1024 * 1024)} MB (--conf max_upload_mb)")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await too_large(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                return {"type": "http.disconnect"}  # the parser stops; nothing more is read
            return message

        await self.app(scope, counted, send)


class TokenAuth:
    """Require the API token (``Authorization: Bearer`` or the login cookie) outside PUBLIC_PATHS."""

    def __init__(self, app, token: str):
        self.app = app
        self.token = token.encode()

    def valid(self, headers: Headers) -> bool:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.token):
            return True
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and hmac.compare_digest(value.encode(), self.token):
                return True
        return False

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] == "http" and path not in PUBLIC_PATHS and not path.startswith(PUBLIC_PREFIXES):
            if not self.valid(Headers(scope=scope)):
                return await _deny(401, "authentication required: send 'Authorization: Bearer <token>' "
                                        "(MONAILabelClient.update_auth) or log in at /auth/login",
                                   {"WWW-Authenticate": "Bearer"})(scope, receive, send)
        await self.app(scope, receive, send)


LOGIN_PAGE = """<!doctype html><meta charset="utf-8"><title>bonescan login</title>
<form method="post" action="/auth/token"><input type="hidden" name="next" value="/viewer/">
<label>API token <input type="password" name="password" autofocus></label><button>Log in</button></form>"""


def _register_auth_routes(api: FastAPI, token: str) -> None:
    """MONAI Label's /auth routes (as its Keycloak login answers them), backed by the one API token."""

    @api.get("/auth/", include_in_schema=False)
    def auth_enabled():
        return {"enabled": True, "client_id": "bonescan", "realm": "api-token"}

    @api.post("/auth/token", include_in_schema=False)
    async def access_token(request: Request):
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        password = (form.get("password") or [""])[0]
        if not hmac.compare_digest(password.encode(), token.encode()):
            return _deny(401, "wrong token (give the API token as the password; any user name)")
        target = (form.get("next") or [""])[0]
        answer = (RedirectResponse(target, status_code=303) if target.startswith("/") and not target.startswith("//")
                  else JSONResponse({"access_token": token, "token_type": "bearer"}))
        answer.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
        return answer

    @api.get("/auth/login", include_in_schema=False)
    def login_page():
        return HTMLResponse(LOGIN_PAGE)

    @api.get("/auth/token/valid", include_in_schema=False)
    def token_valid():
        return {"valid": True}


def _register_error_answers(api: FastAPI) -> None:
    """4xx with a message instead of MONAI Label's HTTP 500 for bad input."""

    async def not_found(request, error):
        return _deny(404, str(getattr(error, "msg", error)))

    async def not_json(request, error):
        return _deny(422, f"params/info must be JSON: {error}")

    api.add_exception_handler(ImageNotFoundException, not_found)
    api.add_exception_handler(LabelNotFoundException, not_found)
    api.add_exception_handler(json.JSONDecodeError, not_json)


def secure(api: FastAPI, app: BoneScanAppProtocol) -> None:
    """Install our stock-route checks, error answers and middleware; refuse an unauthenticated open bind."""
    options = app.options
    host = bind_host()
    token = api_token(options)
    monai_auth = bool(settings.MONAI_LABEL_AUTH_ENABLE)
    check_bind(host, bool(token) or monai_auth, options.insecure_bind)

    register_stock_routes(api, app)
    _register_error_answers(api)
    hosts = list(options.allowed_hosts) or LOOPBACK_NAMES + ([host] if host not in ("0.0.0.0", "::") else [])
    origins = list(options.allowed_origins)
    middleware = [
        Middleware(TrustedHostMiddleware, allowed_hosts=hosts, www_redirect=False),
        Middleware(OriginGuard, allowed_origins=origins),
        Middleware(CORSMiddleware, allow_origins=origins, allow_credentials=False,
                   allow_methods=["GET", "POST", "PUT", "DELETE"], allow_headers=["Authorization", "Content-Type"]),
    ]
    if token and not monai_auth:
        _register_auth_routes(api, token)
        middleware.append(Middleware(TokenAuth, token=token))
    middleware.append(Middleware(BodyLimit, limit=options.max_upload_bytes))
    api.user_middleware = [m for m in api.user_middleware if m.cls is not CORSMiddleware] + middleware
    api.middleware_stack = api.build_middleware_stack()
    logger.info(f"Security: bound to {host}; hosts {hosts}; other origins {origins or 'none'}; "
                f"auth {'API token' if token and not monai_auth else 'MONAI Label' if monai_auth else 'off'}; "
                f"uploads up to {options.max_upload_mb:g} MB")
