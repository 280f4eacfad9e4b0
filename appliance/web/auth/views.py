"""Login, logout, the first visit (the administrator's account, since the box has no default
password), and the language switch. Each login, failure, lock and logout goes to the audit trail."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, send_file, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from flask_login import login_user, logout_user

from appliance.accounts import users
from appliance.accounts.roles import Permission, Role
from appliance.accounts.users import Account, AccountError, LoginRefusal, LoginResult
from appliance.audit.events import Action, EventId, EventType, ObjectKind, Outcome, ParticipantObject
from appliance.certificates import ca_certificate_path, fingerprint, load_certificate
from appliance.web.auth.access import HAS_ACCOUNTS, SEEN, STARTED, ConsoleUser, current_account, public, requires
from appliance.web.auth.forms import FirstAccountForm, LoginForm
from appliance.web.forms import add_error, text
from appliance.web.languages import LANGUAGES
from appliance.web.recording import record
from appliance.web.security import client_address
from appliance.web.services import services

blueprint = Blueprint("auth", __name__, template_folder="templates")
CA_MEDIA_TYPE = "application/x-x509-ca-cert"  # what browsers offer to install


@blueprint.route("/login", methods=["GET", "POST"])
@public
def login() -> ResponseReturnValue:
    form = LoginForm()
    if form.validate_on_submit():
        username = text(form.username)
        result = users.authenticate(services().engine, username, str(form.password.data), client_address())
        record_attempt(username, result)
        if result.succeeded and result.account is not None:
            start_session(result.account)
            return redirect(safe_next(request.args.get("next")))
        add_error(form.password, refusal_words(result))
    return render_template("auth/login.html", form=form, certificate_fingerprint=ca_fingerprint())


@blueprint.route("/ca.crt")
@public
def certificate_authority() -> ResponseReturnValue:
    """The box's certificate authority, for workstations to trust the console (no login needed)."""
    path = ca_certificate_path(services().config)
    if not path.is_file():
        abort(404)
    return send_file(path, mimetype=CA_MEDIA_TYPE, as_attachment=True, download_name="ca.crt")


def ca_fingerprint() -> str:
    """The SHA-256 fingerprint of the box's CA (also on the box's screen), or '' before it exists."""
    path = ca_certificate_path(services().config)
    return fingerprint(load_certificate(path)) if path.is_file() else ""


@blueprint.route("/logout", methods=["POST"])
@requires(Permission.VIEW_HEALTH)
def logout() -> ResponseReturnValue:
    account = current_account()
    if account is not None:
        users.end_sessions(services().engine, account.id)
        record(EventId.USER_AUTHENTICATION, Action.EXECUTE, event_type=EventType.LOGOUT)
    logout_user()
    session.clear()
    flash(gettext("You are logged out."), "info")
    return redirect(url_for("auth.login"))


@blueprint.route("/first-visit", methods=["GET", "POST"])
@public
def first_visit() -> ResponseReturnValue:
    """The box's first visitor creates the administrator's account (refused once one exists)."""
    if users.count(services().engine) > 0:
        return redirect(url_for("auth.login"))
    form = FirstAccountForm()
    if form.validate_on_submit():
        try:
            account = users.create(
                services().engine,
                text(form.username),
                text(form.full_name),
                Role.ADMINISTRATOR,
                str(form.password.data),
                created_by="first-visit",
                only_if_first=True,
            )
        except AccountError as error:
            add_error(getattr(form, error.field), gettext(str(error)))
        else:
            current_app.config[HAS_ACCOUNTS] = True
            users.note_login(services().engine, account.id)
            record_account_created(account)
            start_session(account)
            return redirect(after_first_visit())
    return render_template("auth/first_visit.html", form=form)


@blueprint.route("/language", methods=["POST"])
@public
def language() -> ResponseReturnValue:
    chosen = request.form.get("language", "")
    if chosen in LANGUAGES:
        session["language"] = chosen
    return redirect(safe_next(request.form.get("next")))


def start_session(account: Account) -> None:
    language = session.get("language")
    session.clear()  # a new session after a login: nothing carried over from before (fixation)
    if language:
        session["language"] = language
    login_user(ConsoleUser(account))
    session.permanent = True
    session[SEEN] = session[STARTED] = time.time()


def after_first_visit() -> str:
    """The setup pages when they are there, else the home page."""
    if "setup.start" in current_app.view_functions:
        return url_for("setup.start")
    return url_for("home.index")


def safe_next(target: str | None) -> str:
    """Only a path of this site (never another site, against open redirects)."""
    if not target:
        return url_for("home.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("home.index")
    return target


def refusal_words(result: LoginResult) -> str:
    if result.locked_for_good:
        return gettext("This account is locked after too many failures. An administrator can unlock it.")
    if result.refusal == LoginRefusal.ACCOUNT_LOCKED:
        return gettext("Too many failures: wait a few minutes before trying again.")
    if result.refusal == LoginRefusal.ADDRESS_LOCKED:
        return gettext("Too many failures from this computer: wait 15 minutes before trying again.")
    if result.refusal == LoginRefusal.DISABLED:
        return gettext("This account is disabled.")
    if result.refusal == LoginRefusal.NOT_YET_VALID:
        return gettext("This account is not valid yet.")
    if result.refusal == LoginRefusal.EXPIRED:
        return gettext("This account is no longer valid.")
    return gettext("Wrong username or password.")


def record_attempt(username: str, result: LoginResult) -> None:
    outcome = Outcome.SUCCESS if result.succeeded else Outcome.MINOR_FAILURE
    description = "" if result.succeeded else str(result.refusal)
    record(
        EventId.USER_AUTHENTICATION,
        Action.EXECUTE,
        outcome=outcome,
        event_type=EventType.LOGIN,
        description=description,
        username=username.strip().lower(),
    )
    if result.just_locked:
        record_lock(username.strip().lower(), result)


def record_lock(username: str, result: LoginResult) -> None:
    """A security alert: this failure locked the account, or the address it came from."""
    if result.refusal == LoginRefusal.ADDRESS_LOCKED or result.account is None:
        locked = ParticipantObject(ObjectKind.SECURITY_RESOURCE, client_address(), "login address")
        description = "address locked after repeated login failures"
    else:
        locked = ParticipantObject(ObjectKind.ACCOUNT, result.account.username)
        description = "account locked after repeated login failures"
    record(
        EventId.SECURITY_ALERT,
        Action.EXECUTE,
        objects=(locked,),
        outcome=Outcome.MINOR_FAILURE,
        event_type=EventType.USER_SECURITY_ATTRIBUTES_CHANGED,
        description=description,
        username=username,
    )


def record_account_created(account: Account) -> None:
    record(
        EventId.SECURITY_ALERT,
        Action.CREATE,
        objects=(ParticipantObject(ObjectKind.ACCOUNT, account.username, details=(("role", account.role.value),)),),
        event_type=EventType.USER_SECURITY_ATTRIBUTES_CHANGED,
        description="first administrator account",
        username=account.username,
    )
