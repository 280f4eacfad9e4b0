"""The account forms (Flask-WTF), the roles in words, and the accounts domain's refusals listed so
that the catalogue translates them."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, EqualTo, Length, Optional

from appliance.accounts.roles import Role
from appliance.web.forms import choices, lazy

ROLE_NAMES = {
    Role.SECRETARY: lazy("Secretary"),
    Role.TECHNOLOGIST: lazy("Radiographer"),
    Role.RADIOLOGIST: lazy("Radiologist"),
    Role.ADMINISTRATOR: lazy("Administrator"),
    Role.MAINTENANCE: lazy("Maintenance contractor"),
}
ROLE_CHOICES = choices([(role.value, name) for role, name in ROLE_NAMES.items()])
# The accounts domain's refusals added for these pages (the others are in appliance/web/forms.py).
ACCOUNT_PROBLEMS = (
    lazy("this is the last active administrator: make another administrator first"),
    lazy("the current password is wrong"),
    lazy("the new password must differ from the current one"),
)
PASSWORDS_DIFFER = lazy("The two passwords differ.")


class ProfileFields(FlaskForm):
    """What an administrator sets on any account: name, role, validity, note."""

    full_name = StringField(lazy("Full name"), validators=[DataRequired(), Length(max=200)])
    role = SelectField(lazy("Role"), choices=ROLE_CHOICES)
    valid_from = DateField(lazy("Valid from"), validators=[Optional()])
    valid_until = DateField(lazy("Valid until"), validators=[Optional()])
    note = TextAreaField(lazy("Note"), validators=[Length(max=500)])


class NewAccountForm(ProfileFields):
    username = StringField(lazy("Username"), validators=[DataRequired(), Length(min=2, max=64)])
    password = PasswordField(lazy("Temporary password"), validators=[DataRequired()])
    confirmation = PasswordField(
        lazy("Temporary password again"), validators=[DataRequired(), EqualTo("password", message=PASSWORDS_DIFFER)]
    )


class EditAccountForm(ProfileFields):
    pass


class TemporaryPasswordForm(FlaskForm):
    password = PasswordField(lazy("New temporary password"), validators=[DataRequired()])
    confirmation = PasswordField(
        lazy("New temporary password again"),
        validators=[DataRequired(), EqualTo("password", message=PASSWORDS_DIFFER)],
    )


class OwnPasswordForm(FlaskForm):
    current_password = PasswordField(lazy("Current password"), validators=[DataRequired()])
    password = PasswordField(lazy("New password"), validators=[DataRequired()])
    confirmation = PasswordField(
        lazy("New password again"), validators=[DataRequired(), EqualTo("password", message=PASSWORDS_DIFFER)]
    )
