"""The permission check every request passes, failing closed: a route is reachable only if it says
`@public` (login page, static files, the CA certificate) or `@requires(permission)`, and only by a
logged-in account whose role holds that permission (appliance.accounts.roles.PERMISSIONS).

Sessions are Flask's signed cookies holding the account id and its `session_version`: a logout, a
password or role change, or a disabling raises the version, and every older cookie stops working;
a locked, disabled or expired account is refused at each request. A
session idle longer than `web.idle_minutes`, or older than `web.session_hours`, ends.

Routes marked `@tools` (DICOMweb, WADO-URI) also serve programs that have no session: they accept
`Authorization: Bearer <token>` (`appliance.accounts.tokens`), answer 401 instead of redirecting
to the login page, and in development mode (`make run`) accept requests from the loopback address
without any login, with one warning in the log; never in production.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, abort, current_app, flash, g, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from flask_login import LoginManager, UserMixin, current_user, logout_user

from appliance.accounts import tokens, users
from appliance.accounts.roles import Permission, may
from appliance.accounts.users import Account
from appliance.web.services import services

LOGGER = logging.getLogger(__name__)
View = TypeVar("View", bound=Callable[..., Any])
SEEN = "seen"  # last request that was not a background poll (seconds since the epoch)
STARTED = "started"  # when the session began
HAS_ACCOUNTS = "appliance.has-accounts"
DEVELOPMENT_WARNED = "appliance.development-loopback-warned"
BEARER = "bearer "


class ConsoleUser(UserMixin):
    """The logged-in account as Flask-Login wants it."""

    def __init__(self, account: Account) -> None:
        self.account = account

    def get_id(self) -> str:
        return f"{self.account.id}:{self.account.session_version}"


def configure(app: Flask) -> None:
    manager = LoginManager(app)
    manager.user_loader(load_user)
    manager.session_protection = "basic"
    app.before_request(check_access)
    app.context_processor(lambda: {"can": can, "account": current_account()})


def load_user(user_id: str) -> ConsoleUser | None:
    """The account of a session cookie, if the cookie is still good for it."""
    identifier, _, version = user_id.partition(":")
    if not identifier.isdigit() or not version.isdigit():
        return None
    account = users.find(services().engine, int(identifier))
    if account is None or account.session_version != int(version):
        return None
    if account.locked(users.now()) or users.standing_refusal(account, users.now()):
        return None
    return ConsoleUser(account)


def public(view: View) -> View:
    """Reachable without logging in."""
    view.public = True  # type: ignore[attr-defined]
    return view


def requires(permission: Permission) -> Callable[[View], View]:
    """Reachable by the roles holding `permission` (checked by `check_access`, before the view)."""

    def mark(view: View) -> View:
        view.permission = permission  # type: ignore[attr-defined]
        return view

    return mark


def background(view: View) -> View:
    """A poll made by the page itself (a progress bar): it does not keep an idle session alive."""
    view.background = True  # type: ignore[attr-defined]
    return view


def tools(view: View) -> View:
    """Also reachable by programs: a bearer token instead of a session, 401 instead of a redirect to
    the login page, and the development mode's loopback rule (see the module's docstring)."""
    view.tools = True  # type: ignore[attr-defined]
    return view


def current_account() -> Account | None:
    """The account of the session, or of the bearer token a tool presented."""
    user = current_user._get_current_object()
    if isinstance(user, ConsoleUser):
        return user.account
    found: Account | None = g.get("token_account")
    return found


def development_loopback() -> bool:
    """Whether this request was let in without login by development mode's loopback rule."""
    return bool(g.get("development_loopback", False))


def can(permission: Permission | str) -> bool:
    account = current_account()
    return account is not None and may(account.role, Permission(permission))


def check_access() -> ResponseReturnValue | None:
    if request.endpoint == "static":
        return None
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or getattr(view, "public", False):
        return None
    if getattr(view, "tools", False):
        return check_tool_access(view)
    if not has_accounts():
        return redirect(url_for("auth.first_visit"))
    if current_account() is None:
        return redirect(url_for("auth.login", next=request.full_path if request.method == "GET" else None))
    if session_expired():
        return end_session()
    if not getattr(view, "background", False):
        session[SEEN] = time.time()
    permission = getattr(view, "permission", None)
    if permission is None or not can(permission):
        abort(403)
    return None


def has_accounts() -> bool:
    """Whether the first administrator exists (remembered once true: accounts are never all removed)."""
    if not current_app.config.get(HAS_ACCOUNTS):
        current_app.config[HAS_ACCOUNTS] = users.count(services().engine) > 0
    return bool(current_app.config[HAS_ACCOUNTS])


def session_expired() -> bool:
    web = services().config.web
    now = time.time()
    seen = float(session.get(SEEN, now))
    started = float(session.get(STARTED, now))
    return now - seen > web.idle_minutes * 60 or now - started > web.session_hours * 3600


def end_session() -> ResponseReturnValue:
    logout_user()
    session.clear()
    flash(gettext("Your session has ended. Please log in again."), "warning")
    return redirect(url_for("auth.login", next=request.full_path if request.method == "GET" else None))


def check_tool_access(view: Callable[..., Any]) -> ResponseReturnValue | None:
    """A `@tools` route: the bearer token, else the session, else development's loopback rule."""
    authorization = request.headers.get("Authorization", "")
    if authorization[: len(BEARER)].lower() == BEARER:
        account = tokens.check(services().engine, authorization[len(BEARER) :].strip())
        if account is None:
            return unauthorized("invalid_token")
        g.token_account = account
    elif current_account() is not None and not session_expired():
        if not getattr(view, "background", False):
            session[SEEN] = time.time()
    elif services().config.is_development and is_loopback(request.remote_addr or ""):
        warn_development_once()
        g.development_loopback = True
        return None
    else:
        return unauthorized("")
    permission = getattr(view, "permission", None)
    if permission is None or not can(permission):
        abort(403)
    return None


def unauthorized(error: str) -> Response:
    """401 with the challenge a tool expects (RFC 6750): log in, or present a valid token."""
    challenge = 'Bearer realm="appliance"' + (f', error="{error}"' if error else "")
    return Response("authentication required\n", 401, {"WWW-Authenticate": challenge}, mimetype="text/plain")


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def warn_development_once() -> None:
    if not current_app.config.get(DEVELOPMENT_WARNED):
        current_app.config[DEVELOPMENT_WARNED] = True
        LOGGER.warning("development mode: DICOMweb requests from the loopback address are served without login")
