"""The console's error pages: in the console's layout and language, saying what happened and what to
do, rather than the WSGI server's English defaults. A poll asking for JSON gets JSON."""

from __future__ import annotations

from flask import Flask, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from appliance.web.forms import lazy

EXPLANATIONS = {
    400: (lazy("The request is not valid"), lazy("Go back, reload the page and try again.")),
    403: (
        lazy("Not allowed"),
        lazy("Your account's role does not open this page. Ask the practice's administrator if you need it."),
    ),
    404: (lazy("Not found"), lazy("This page or this record does not exist (any more).")),
    405: (lazy("The request is not valid"), lazy("Go back, reload the page and try again.")),
    413: (lazy("Too large"), lazy("What was sent is larger than the console accepts.")),
    500: (
        lazy("Something went wrong"),
        lazy("The console could not answer. Nothing was changed; try again, and tell the maintenance if it goes on."),
    ),
}
EXPIRED_FORM = (
    lazy("The form has expired"),
    lazy("For your safety, a form is valid for its page only. Reload the page, then send it again."),
)


def configure(app: Flask) -> None:
    app.register_error_handler(CSRFError, expired_form)
    app.register_error_handler(HTTPException, http_error)


def expired_form(error: CSRFError) -> ResponseReturnValue:
    return page(400, *EXPIRED_FORM)


def http_error(error: HTTPException) -> ResponseReturnValue:
    code = error.code or 500
    title, advice = EXPLANATIONS.get(code, EXPLANATIONS[400 if code < 500 else 500])
    return page(code, title, advice, (error.description or "") if code in (400, 404) else "")


def page(code: int, title: str, advice: str, detail: str = "") -> ResponseReturnValue:
    if request.accept_mimetypes.best == "application/json":
        return {"error": str(title), "detail": detail}, code
    return render_template("error.html", code=code, title=title, advice=advice), code
