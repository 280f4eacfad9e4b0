"""Image availability for the RIS (W5): a study counts as received once no image of it has arrived
for a quiet period; a workflow event `images-available` then tells the HL7 side to say so.

It follows the archive's change feed with a cursor; a study still receiving images holds the
cursor back, and a study already announced since its last image is not announced again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, and_, func, insert, select

from appliance.archive.index import INSTANCE_STORED, Index
from appliance.archive.tables import change, study
from appliance.worklist.tables import scheduled_step, workflow_event

CONSUMER = "image-availability"
IMAGES_AVAILABLE = "images-available"


def announce_complete_studies(index: Index, quiet: timedelta, now: datetime | None = None) -> int:
    """Record `images-available` for each study quiet for `quiet`; return how many were announced."""
    moment = now or datetime.now(UTC)
    cursor = index.cursor(CONSUMER)
    with index.engine.connect() as connection:
        settled = connection.execute(
            select(func.max(change.c.id)).where(change.c.kind == INSTANCE_STORED, change.c.created_at <= moment - quiet)
        ).scalar()
        if settled is None or settled <= cursor:
            return 0
        studies = list(
            connection.execute(
                select(change.c.study_instance_uid)
                .where(change.c.kind == INSTANCE_STORED, change.c.id > cursor, change.c.id <= settled)
                .group_by(change.c.study_instance_uid)
            ).scalars()
        )
    still_receiving = receiving(index.engine, studies, settled)
    announced = sum(announce(index.engine, uid, moment) for uid in studies if uid not in still_receiving)
    index.advance_cursor(CONSUMER, held_back_cursor(index.engine, cursor, settled, still_receiving))
    return announced


def receiving(engine: Engine, studies: list[str], settled: int) -> set[str]:
    """The studies that got images after the settled point: their quiet period is not over."""
    if not studies:
        return set()
    with engine.connect() as connection:
        return set(
            connection.execute(
                select(change.c.study_instance_uid)
                .where(change.c.id > settled, change.c.study_instance_uid.in_(studies))
                .group_by(change.c.study_instance_uid)
            ).scalars()
        )


def held_back_cursor(engine: Engine, cursor: int, settled: int, still_receiving: set[str]) -> int:
    if not still_receiving:
        return settled
    with engine.connect() as connection:
        first = connection.execute(
            select(func.min(change.c.id)).where(
                change.c.id > cursor, change.c.study_instance_uid.in_(sorted(still_receiving))
            )
        ).scalar()
    return min(settled, int(first) - 1) if first is not None else settled


def announce(engine: Engine, study_instance_uid: str, moment: datetime) -> bool:
    """One `images-available` event, unless one was recorded after the study's last image."""
    with engine.begin() as connection:
        last_image = connection.execute(
            select(func.max(change.c.created_at)).where(change.c.study_instance_uid == study_instance_uid)
        ).scalar()
        already = connection.execute(
            select(workflow_event.c.id).where(
                and_(
                    workflow_event.c.kind == IMAGES_AVAILABLE,
                    workflow_event.c.study_instance_uid == study_instance_uid,
                    workflow_event.c.created_at >= last_image,
                )
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
        connection.execute(
            insert(workflow_event).values(
                kind=IMAGES_AVAILABLE,
                scheduled_step_pk=step,
                study_instance_uid=study_instance_uid,
                accession_number=accession or "",
                created_at=moment,
            )
        )
    return True
