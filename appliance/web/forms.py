"""What every console form shares: translated labels made when shown, and errors put next to the
field they are about (a domain refusal names its field)."""

from __future__ import annotations

from typing import cast

from flask_babel import lazy_gettext
from wtforms import Field
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # wtforms 3.3; the stubs lag


def lazy(message: str) -> str:
    """A translation looked up when the page is shown (forms are declared before any request);
    typed as the text it stands for. `make translations` extracts `lazy(...)` too."""
    return cast(str, lazy_gettext(message))


def choices(pairs: list[tuple[str, str]]) -> list[SelectChoice]:
    """The options of a select field or checkboxes from (value, label) pairs (tuples are deprecated)."""
    return [SelectChoice(value, label) for value, label in pairs]


def add_error(field: Field, message: str) -> None:
    field.errors = [*field.errors, message]


def text(field: Field) -> str:
    """A text field's value, stripped ('' when empty)."""
    return str(field.data or "").strip()


# What the accounts domain may refuse, in its words; listed so that the catalogue has them.
ACCOUNT_PROBLEMS = (
    lazy("at least 10 characters"),
    lazy("must not contain the username"),
    lazy("at least 3 kinds of characters (lower case, upper case, digits, others)"),
    lazy("between 2 and 64 characters"),
    lazy("lower-case letters, digits, dots, dashes and underscores only"),
    lazy("a full name is needed (one person, one account)"),
    lazy("the first account exists already"),
    lazy("this username is taken"),
    lazy("the end of validity comes before its start"),
    lazy("no such account"),
)
