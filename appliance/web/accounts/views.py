"""The accounts pages: everything goes through `appliance.accounts.users` (its rules, among them
that an active administrator always stays), and every change is one audit record: 110113 Security
Alert with the account (username, and the changed attributes with their new values, never a
password) as the object; 110136 Security Roles Changed when the role changed, else 110137 User
Security Attributes Changed."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from flask_login import login_user
from flask_wtf import FlaskForm

from appliance.accounts import users
from appliance.accounts.roles import Permission, Role
from appliance.accounts.users import Account, AccountChanges, AccountError
from appliance.audit.events import Action, EventId, EventType, ObjectKind, ParticipantObject
from appliance.web.accounts.forms import (
    ROLE_NAMES,
    EditAccountForm,
    NewAccountForm,
    OwnPasswordForm,
    TemporaryPasswordForm,
)
from appliance.web.auth.access import ConsoleUser, current_account, requires
from appliance.web.forms import add_error, text
from appliance.web.recording import record
from appliance.web.services import services

blueprint = Blueprint("accounts", __name__, template_folder="templates")


@blueprint.app_template_filter("role_name")
def role_name(role: Role | str) -> str:
    """A role in the page's language: Secrétaire, Radiologue…"""
    try:
        return str(ROLE_NAMES[Role(role)])
    except ValueError:
        return str(role)


@blueprint.route("/accounts")
@requires(Permission.MANAGE_ACCOUNTS)
def index() -> ResponseReturnValue:
    accounts = users.all_accounts(services().engine)
    return render_template("accounts/index.html", accounts=accounts, states={a.id: state(a) for a in accounts})


def state(account: Account) -> tuple[str, str]:
    """(badge class, words) of an account today: disabled, locked, not yet valid, expired, active."""
    at = users.now()
    if account.disabled:
        return "error", gettext("Disabled")
    if account.locked(at):
        return "error", gettext("Locked")
    refusal = users.standing_refusal(account, at)
    if refusal == users.LoginRefusal.NOT_YET_VALID:
        return "warning", gettext("Not valid yet")
    if refusal == users.LoginRefusal.EXPIRED:
        return "warning", gettext("Expired")
    return "ok", gettext("Active")


@blueprint.route("/accounts/new", methods=["GET", "POST"])
@requires(Permission.MANAGE_ACCOUNTS)
def create() -> ResponseReturnValue:
    form = NewAccountForm()
    if form.validate_on_submit() and dates_in_order(form):
        try:
            account = users.create(
                services().engine,
                text(form.username),
                text(form.full_name),
                Role(form.role.data),
                str(form.password.data),
                created_by=requestor_name(),
                valid_from=form.valid_from.data,
                valid_until=form.valid_until.data,
                note=text(form.note),
            )
        except AccountError as error:
            add_error(getattr(form, error.field), gettext(str(error)))
        else:
            details = users.differences(blank(account), account)
            record_account(account, Action.CREATE, EventType.USER_SECURITY_ATTRIBUTES_CHANGED, details)
            flash(gettext("Account %(username)s created.", username=account.username), "success")
            return redirect(url_for("accounts.index"))
    return render_template("accounts/new.html", form=form)


def blank(account: Account) -> Account:
    """An account with nothing set, to name every attribute a new account was given."""
    return Account(account.id, account.username, "", Role.SECRETARY, None, None, False, "", 0, None, 0, None,
                   account.created_at, account.created_by)  # fmt: skip


@blueprint.route("/accounts/<int:account_id>", methods=["GET", "POST"])
@requires(Permission.MANAGE_ACCOUNTS)
def edit(account_id: int) -> ResponseReturnValue:
    account = found(account_id)
    form = EditAccountForm(obj=account, role=account.role.value)
    if form.validate_on_submit() and dates_in_order(form):
        changes = AccountChanges(
            full_name=text(form.full_name),
            role=Role(form.role.data),
            valid_from=form.valid_from.data,
            valid_until=form.valid_until.data,
            set_validity=True,
            note=text(form.note),
        )
        if apply(account, changes, form):
            return redirect(url_for("accounts.edit", account_id=account_id))
    return render_page(account, form)


def render_page(account: Account, form: FlaskForm, password_form: TemporaryPasswordForm | None = None) -> str:
    return render_template(
        "accounts/edit.html",
        edited=account,
        form=form,
        password_form=password_form or TemporaryPasswordForm(formdata=None),
        status=state(account),
    )


def apply(account: Account, changes: AccountChanges, form: FlaskForm | None = None) -> bool:
    """Make the change, audit it and say so; a refusal goes next to its field (or in a notice)."""
    try:
        changed = users.change(services().engine, account.id, changes)
    except AccountError as error:
        field = getattr(form, error.field, None) if form is not None else None
        if field is not None:
            add_error(field, gettext(str(error)))
        else:
            flash(gettext(str(error)), "error")
        return False
    details = users.differences(account, changed)
    if details:
        role_changed = changed.role != account.role
        event_type = EventType.SECURITY_ROLES_CHANGED if role_changed else EventType.USER_SECURITY_ATTRIBUTES_CHANGED
        action = Action.UPDATE if changes.disabled is None else Action.EXECUTE
        record_account(changed, action, event_type, details)
        flash(gettext("Account %(username)s changed.", username=changed.username), "success")
    return True


@blueprint.route("/accounts/<int:account_id>/disable", methods=["POST"])
@requires(Permission.MANAGE_ACCOUNTS)
def disable(account_id: int) -> ResponseReturnValue:
    apply(found(account_id), AccountChanges(disabled=True))
    return redirect(url_for("accounts.edit", account_id=account_id))


@blueprint.route("/accounts/<int:account_id>/enable", methods=["POST"])
@requires(Permission.MANAGE_ACCOUNTS)
def enable(account_id: int) -> ResponseReturnValue:
    apply(found(account_id), AccountChanges(disabled=False))
    return redirect(url_for("accounts.edit", account_id=account_id))


@blueprint.route("/accounts/<int:account_id>/unlock", methods=["POST"])
@requires(Permission.MANAGE_ACCOUNTS)
def unlock(account_id: int) -> ResponseReturnValue:
    account = found(account_id)  # the CSRF token was checked before this view (CSRFProtect)
    users.unlock(services().engine, account.id)
    record_account(account, Action.EXECUTE, EventType.USER_SECURITY_ATTRIBUTES_CHANGED, (("locked", "false"),))
    flash(gettext("Account %(username)s unlocked.", username=account.username), "success")
    return redirect(url_for("accounts.edit", account_id=account_id))


@blueprint.route("/accounts/<int:account_id>/password", methods=["POST"])
@requires(Permission.MANAGE_ACCOUNTS)
def password(account_id: int) -> ResponseReturnValue:
    """A temporary password given by the administrator (ends the account's sessions)."""
    account = found(account_id)
    form = TemporaryPasswordForm()
    if form.validate_on_submit():
        try:
            users.set_password(services().engine, account.id, str(form.password.data))
        except AccountError as error:
            add_error(form.password, gettext(str(error)))
        else:
            details = (("password", "set by an administrator"),)
            record_account(account, Action.EXECUTE, EventType.USER_SECURITY_ATTRIBUTES_CHANGED, details)
            flash(gettext("New password of %(username)s set: give it to them.", username=account.username), "success")
            return redirect(url_for("accounts.edit", account_id=account_id))
    return render_page(account, EditAccountForm(obj=account, role=account.role.value, formdata=None), form)


@blueprint.route("/my-account", methods=["GET", "POST"])
@requires(Permission.VIEW_HEALTH)
def mine() -> ResponseReturnValue:
    """Every user's own page: who they are, and a new password (the current one is needed)."""
    account = current_account()
    assert account is not None
    form = OwnPasswordForm()
    if form.validate_on_submit():
        try:
            users.change_own_password(
                services().engine, account.id, str(form.current_password.data), str(form.password.data)
            )
        except AccountError as error:
            add_error(getattr(form, error.field), gettext(str(error)))
        else:
            changed = users.find(services().engine, account.id)
            assert changed is not None
            login_user(ConsoleUser(changed))  # the new session version: this session goes on, the others end
            details = (("password", "changed by its holder"),)
            record_account(changed, Action.EXECUTE, EventType.USER_SECURITY_ATTRIBUTES_CHANGED, details)
            flash(gettext("Your password is changed. Your other sessions are closed."), "success")
            return redirect(url_for("accounts.mine"))
    return render_template("accounts/mine.html", form=form)


def found(account_id: int) -> Account:
    account = users.find(services().engine, account_id)
    if account is None:
        abort(404)
    return account


def dates_in_order(form: NewAccountForm | EditAccountForm) -> bool:
    """The period's end not before its start (said next to the end date)."""
    start, end = form.valid_from.data, form.valid_until.data
    if start and end and end < start:
        add_error(form.valid_until, gettext("the end of validity comes before its start"))
        return False
    return True


def requestor_name() -> str:
    account = current_account()
    return account.username if account else ""


def record_account(
    account: Account, action: Action, event_type: EventType, details: tuple[tuple[str, str], ...]
) -> None:
    """One Security Alert about `account`, its changed attributes as details."""
    subject = ParticipantObject(ObjectKind.ACCOUNT, account.username, account.full_name, details=details)
    record(EventId.SECURITY_ALERT, action, objects=(subject,), event_type=event_type)
