"""How the reconciliation pages say things: the reason a study waits, person names and DICOM dates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_babel import gettext

from appliance.web.languages import day


def reason_words(row: dict[str, Any]) -> str:
    """Why a study waits (`unreconciled_studies` row), in the reader's language."""
    if row.get("uid_ordered_for") is not None:
        return gettext("Its Study Instance UID is ordered for patient %(patient)s.", patient=row["uid_ordered_for"])
    if row.get("accession_ordered_for") is not None:
        return gettext("Its accession number is ordered for patient %(patient)s.", patient=row["accession_ordered_for"])
    return gettext("No order names it.")


def person_name(value: object) -> str:
    """A DICOM person name as people write it: `DUPONT^Jean` becomes `DUPONT Jean`."""
    alphabetic = str(value or "").split("=")[0]
    return " ".join(part for part in alphabetic.split("^") if part)


def dicom_day(value: object) -> str:
    """A DICOM date (YYYYMMDD) the French way, or the value as it is when it is not one."""
    raw = str(value or "")
    try:
        return day(datetime.strptime(raw, "%Y%m%d").date())
    except ValueError:
        return raw


def modalities(value: object) -> str:
    return ", ".join(part for part in str(value or "").split("\\") if part)


def helpers() -> dict[str, Any]:
    """What the feature's templates use."""
    return {"person_name": person_name, "dicom_day": dicom_day, "modalities": modalities}
