"""French first, English available (Flask-Babel). Each feature folder of the console may keep its own
catalogue in `translations/`; they are merged. Dates are shown in the practice's time zone and the
French way (02/12/2026 14:05), sizes in octets with a decimal comma (1,2 Go).

`make translations` extracts the English message IDs and compiles the catalogues; a test checks the
committed `.mo` files match their `.po` files.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from babel.numbers import format_decimal
from flask import Flask, session
from flask_babel import Babel, format_date, format_datetime, get_locale

from appliance import practice_time

LANGUAGES = ("fr", "en")
DEFAULT_LANGUAGE = "fr"
WEB = Path(__file__).parent
SIZE_UNITS = {"fr": ("o", "Ko", "Mo", "Go", "To"), "en": ("B", "KB", "MB", "GB", "TB")}


def configure(app: Flask) -> None:
    app.config.update(
        BABEL_DEFAULT_LOCALE=DEFAULT_LANGUAGE,
        BABEL_TRANSLATION_DIRECTORIES=";".join(str(folder) for folder in translation_folders()),
    )
    Babel(app, locale_selector=chosen_language, timezone_selector=practice_time.zone_name)
    app.jinja_env.filters.update(when=when, day=day, size=size, number=number, euros=euros)
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.context_processor(lambda: {"language": str(get_locale() or DEFAULT_LANGUAGE), "languages": LANGUAGES})


def translation_folders() -> list[Path]:
    return sorted(folder for folder in WEB.rglob("translations") if folder.is_dir())


def chosen_language() -> str:
    chosen = session.get("language")
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


def when(value: datetime | None) -> str:
    """A moment in the practice's time zone: 02/12/2026 14:05."""
    return format_datetime(value, "short") if value else ""


def day(value: date | datetime | None) -> str:
    """A day: 02/12/2026."""
    return format_date(value, "short") if value else ""


def size(value: int | None) -> str:
    """A size in octets, 1,2 Go (1000-based units, as disks are sold)."""
    if value is None:
        return ""
    language = str(get_locale() or DEFAULT_LANGUAGE)
    units = SIZE_UNITS.get(language, SIZE_UNITS["en"])
    amount = float(value)
    unit = 0
    while amount >= 1000 and unit < len(units) - 1:
        amount /= 1000
        unit += 1
    shown = format_decimal(amount, format="#,##0" if unit == 0 else "#,##0.0", locale=language)
    return f"{shown}\N{NO-BREAK SPACE}{units[unit]}"


def number(value: int | float | None) -> str:
    return format_decimal(value, locale=str(get_locale() or DEFAULT_LANGUAGE)) if value is not None else ""


def euros(value: Decimal | None) -> str:
    """An amount with its cents, as on an invoice: 3,00 (`number` would drop them: 3)."""
    if value is None:
        return ""
    return format_decimal(value, format="#,##0.00", locale=str(get_locale() or DEFAULT_LANGUAGE))
