"""The login and first-visit forms (Flask-WTF: each carries its CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from appliance.web.forms import lazy


class LoginForm(FlaskForm):
    username = StringField(lazy("Username"), validators=[DataRequired()])
    password = PasswordField(lazy("Password"), validators=[DataRequired()])


class FirstAccountForm(FlaskForm):
    full_name = StringField(lazy("Full name"), validators=[DataRequired(), Length(max=200)])
    username = StringField(lazy("Username"), validators=[DataRequired(), Length(min=2, max=64)])
    password = PasswordField(lazy("Password"), validators=[DataRequired()])
    confirmation = PasswordField(
        lazy("Password again"),
        validators=[DataRequired(), EqualTo("password", message=lazy("The two passwords differ."))],
    )
