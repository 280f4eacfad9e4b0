"""The forwarding consumer of the change feed: each instance stored is matched against the rules in
force and queued for each destination, in the same transaction that moves the consumer's cursor
(a crash in between queues nothing twice: the cursor and the messages commit together, and a
message's cause is its instance)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Engine, select

from appliance.archive import changes
from appliance.config import Config
from appliance.db.schema import instance, series, study
from appliance.forward.queues import Forwarded, queue
from appliance.forward.rules import InstanceFacts, destinations

CONSUMER = "forward"
BATCH = 500


def route_new_instances(engine: Engine, config: Config, limit: int = BATCH) -> int:
    """Queue the instances stored since the last round for their destinations; how many changes
    were read (0: nothing new)."""
    with engine.begin() as connection:
        cursor = changes.cursor_of(connection, CONSUMER)
        read = changes.read_after(connection, cursor, {changes.INSTANCE_STORED}, limit)
        if not read:
            return 0
        if config.forward.rules:
            facts = facts_of(connection, [found.sop_instance_uid for found in read])
            for found in read:
                route(connection, config, found, facts.get(found.sop_instance_uid))
        changes.advance(connection, CONSUMER, read[-1].id)
    return len(read)


def route(connection: Connection, config: Config, found: changes.Change, facts: InstanceFacts | None) -> None:
    if facts is None:  # removed since: nothing to send
        return
    for rule in config.forward.rules:
        for destination in destinations([rule], facts):
            queue(connection, destination, Forwarded(found.sop_instance_uid, found.study_instance_uid), rule.name)


FACTS = select(
    instance.c.sop_instance_uid,
    instance.c.calling_ae_title,
    instance.c.sop_class_uid,
    series.c.modality,
    study.c.study_description,
).select_from(instance.join(series, series.c.id == instance.c.series_pk).join(study, study.c.id == series.c.study_pk))


def facts_of(connection: Connection, sop_instance_uids: Sequence[str]) -> dict[str, InstanceFacts]:
    rows = connection.execute(FACTS.where(instance.c.sop_instance_uid.in_(list(sop_instance_uids))))
    return {
        row.sop_instance_uid: InstanceFacts(
            row.calling_ae_title, row.modality, row.sop_class_uid, row.study_description
        )
        for row in rows
    }
