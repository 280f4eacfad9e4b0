"""Image availability for the RIS (W5): a study counts as received once no image of it has arrived
for a quiet period; an `images-available` change is then published for the HL7 side to send.

It follows the change feed with its own cursor; a study still receiving images holds the cursor
back, and a study already announced since its last image is not announced again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, func, select

from appliance.archive import changes
from appliance.db.schema import change, scheduled_step, study

CONSUMER = "image-availability"
STORED = (changes.INSTANCE_STORED,)


def announce_complete_studies(engine: Engine, quiet: timedelta, now: datetime | None = None) -> int:
    """Publish `images-available` for each study quiet for `quiet`; return how many were announced."""
    moment = now or datetime.now(UTC)
    with engine.connect() as connection:
        cursor = changes.cursor_of(connection, CONSUMER)
        settled = connection.execute(
            select(func.max(change.c.id)).where(
                change.c.kind == changes.INSTANCE_STORED, change.c.created_at <= moment - quiet
            )
        ).scalar()
        if settled is None or settled <= cursor:
            return 0
        studies = stored_studies(connection, cursor, settled)
        still_receiving = receiving(connection, studies, settled)
    announced = sum(announce(engine, uid, moment) for uid in studies if uid not in still_receiving)
    with engine.begin() as connection:
        changes.advance(connection, CONSUMER, held_back_cursor(connection, cursor, settled, still_receiving))
    return announced


def stored_studies(connection: Connection, cursor: int, settled: int) -> list[str]:
    """The studies that got images between the cursor and the settled point."""
    statement = (
        select(change.c.study_instance_uid)
        .where(change.c.kind == changes.INSTANCE_STORED, change.c.id > cursor, change.c.id <= settled)
        .group_by(change.c.study_instance_uid)
    )
    return list(connection.execute(statement).scalars())


def receiving(connection: Connection, studies: list[str], settled: int) -> set[str]:
    """The studies that got images after the settled point: their quiet period is not over."""
    if not studies:
        return set()
    statement = (
        select(change.c.study_instance_uid)
        .where(
            change.c.kind == changes.INSTANCE_STORED,
            change.c.id > settled,
            change.c.study_instance_uid.in_(studies),
        )
        .group_by(change.c.study_instance_uid)
    )
    return set(connection.execute(statement).scalars())


def held_back_cursor(connection: Connection, cursor: int, settled: int, still_receiving: set[str]) -> int:
    if not still_receiving:
        return settled
    first = connection.execute(
        select(func.min(change.c.id)).where(
            change.c.kind == changes.INSTANCE_STORED,
            change.c.id > cursor,
            change.c.study_instance_uid.in_(sorted(still_receiving)),
        )
    ).scalar()
    return min(settled, int(first) - 1) if first is not None else settled


def announce(engine: Engine, study_instance_uid: str, moment: datetime) -> bool:
    """One `images-available` change, unless one was published after the study's last image."""
    with engine.begin() as connection:
        last_image = connection.execute(
            select(func.max(change.c.created_at)).where(
                change.c.study_instance_uid == study_instance_uid, change.c.kind == changes.INSTANCE_STORED
            )
        ).scalar()
        already = connection.execute(
            select(change.c.id).where(
                change.c.kind == changes.IMAGES_AVAILABLE,
                change.c.study_instance_uid == study_instance_uid,
                change.c.created_at >= last_image,
            )
        ).first()
        if already is not None:
            return False
        accession = connection.execute(
            select(study.c.accession_number).where(study.c.study_instance_uid == study_instance_uid)
        ).scalar()
        step = connection.execute(
            select(scheduled_step.c.id).where(scheduled_step.c.study_instance_uid == study_instance_uid).limit(1)
        ).scalar()
        changes.publish(
            connection,
            changes.IMAGES_AVAILABLE,
            study_instance_uid,
            moment,
            accession_number=accession or "",
            scheduled_step_pk=step,
        )
    return True
