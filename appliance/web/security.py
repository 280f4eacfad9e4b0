"""The rules every request passes, whatever the page: a secret key kept on the box, session cookies
that scripts cannot read (HTTPS-only on the box), CSRF tokens on every form (Flask-WTF), security
headers with a Content-Security-Policy that allows no inline script (Flask-Talisman), no caching of
pages (they show patient data), and the client's address as nginx saw it.

HSTS stays off: the box's certificate comes from its own CA, and HSTS would make a workstation that
does not trust that CA yet unable to reach the console at all.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask, Response, request
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from appliance.config import Config

View = TypeVar("View", bound=Callable[..., Any])
SECRET_KEY_FILE = Path("web") / "secret_key"
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data: blob:",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
# The built-in viewer's pages and assets only: its image codecs are WebAssembly, compiled in the page
# and in its decoding workers (module workers from the viewer's own files). Still no inline script,
# no eval: only 'wasm-unsafe-eval', which allows compiling WebAssembly and nothing else.
VIEWER_CONTENT_SECURITY_POLICY = {
    **CONTENT_SECURITY_POLICY,
    "script-src": "'self' 'wasm-unsafe-eval'",
    "worker-src": "'self'",
}
CACHEABLE = ("/static/", "/viewer/assets/")  # no patient data; the viewer's assets are hashed


def configure(app: Flask, config: Config) -> None:
    app.config.update(
        SECRET_KEY=secret_key(config.storage.data_directory / SECRET_KEY_FILE),
        SESSION_COOKIE_NAME="__Host-console" if config.web.secure_cookies else "console",
        SESSION_COOKIE_SECURE=config.web.secure_cookies,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=config.web.session_hours),
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session, which has its own limits
        MAX_CONTENT_LENGTH=16 * 1024 * 1024,  # forms only; DICOMweb uploads get their own limit
    )
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    CSRFProtect(app)
    Talisman(
        app,
        force_https=False,  # nginx redirects to HTTPS on the box; `make run` serves plain HTTP on loopback
        strict_transport_security=False,
        session_cookie_secure=config.web.secure_cookies,
        content_security_policy=CONTENT_SECURITY_POLICY,
        frame_options="DENY",
        referrer_policy="same-origin",
        permissions_policy={"camera": "()", "microphone": "()", "geolocation": "()"},
    )
    app.after_request(no_caching)


def secret_key(path: Path) -> bytes:
    """The key signing session cookies: made once per box, readable by the console's user only, the
    same for every worker process (so a session works whichever worker answers)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    candidate = path.with_name(f".{path.name}.{os.getpid()}")
    candidate.write_bytes(secrets.token_bytes(32))
    candidate.chmod(0o600)
    try:
        os.link(candidate, path)  # the first worker's key wins; the others read it
    except FileExistsError:
        pass
    finally:
        candidate.unlink()
    return path.read_bytes()


def viewer_policy(view: View) -> View:
    """Mark a view of the built-in viewer: it gets VIEWER_CONTENT_SECURITY_POLICY (Flask-Talisman
    reads the options a view carries)."""
    view.talisman_view_options = {"content_security_policy": VIEWER_CONTENT_SECURITY_POLICY}  # type: ignore[attr-defined]
    return view


def no_caching(response: Response) -> Response:
    if not request.path.startswith(CACHEABLE):
        response.headers["Cache-Control"] = "no-store"
    return response


def client_address() -> str:
    """The address of the browser (nginx's X-Forwarded-For on the box)."""
    return request.remote_addr or ""
