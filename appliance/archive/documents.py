"""Each instance's DICOM JSON, made by the worker within seconds of its C-STORE (issue 14).

A C-STORE is acknowledged once its file and its index row are durable. Its DICOM JSON
(`metadata.instance_document`, kept in `instance_metadata` for DICOMweb metadata and viewers) is
made here, off that path, from the header the index kept (`instance_header`), for each instance the
change feed announces. Until it is made, `metadata.metadata` makes the same document from that
header when it serves (as for the instances archived before the documents existed): a viewer that
asks at once gets the whole answer, a little later.

The instances of one feed page are done together, so the elements the images of a series share are
converted once (`metadata.MEMBERS`). A document another writer stored first (the lossless
compressor's, for the new file it made) is kept: a round that meets one stores nothing, and the
next round does the others again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pydicom.dataset import Dataset
from sqlalchemy import Engine, bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from appliance.archive import changes
from appliance.archive.attributes import checked_header
from appliance.archive.changes import Feed
from appliance.archive.metadata import InstanceDocument, document_of_header
from appliance.db.schema import instance, instance_header, instance_metadata

LOGGER = logging.getLogger(__name__)

CONSUMER = "instance-documents"
BATCH = 500  # changes read per round: 0.1 to 0.2 s of work (230 to 340 µs of CPU a document)

MISSING = (
    select(
        instance.c.id,
        instance.c.received_size_bytes,
        instance.c.received_transfer_syntax_uid,
        instance_header.c.header,
    )
    .join(instance_header, instance_header.c.instance_pk == instance.c.id)
    .outerjoin(instance_metadata, instance_metadata.c.instance_pk == instance.c.id)
    .where(instance.c.sop_instance_uid.in_(bindparam("uids", expanding=True)))
    .where(instance_metadata.c.instance_pk.is_(None))
    .order_by(instance.c.id)
)


def documents_round(engine: Engine, limit: int = BATCH) -> int:
    """Make the documents of the instances stored since the last round. Returns how many changes
    were read when that was a full page (more are waiting: the worker's loop comes back at once),
    else 0: the loop then waits its pause, so that a series arriving is done in a few large rounds,
    each one transaction, rather than in many small ones beside the ingest."""
    feed = Feed(engine, CONSUMER, (changes.INSTANCE_STORED,))
    pending = feed.pending(limit)
    if not pending:
        return 0
    made = missing_documents(engine, sorted({change.sop_instance_uid for change in pending}))
    if not stored(engine, made, pending[-1].id):
        return 0
    return len(pending) if len(pending) >= limit else 0


def missing_documents(engine: Engine, sop_instance_uids: Sequence[str]) -> list[tuple[int, InstanceDocument]]:
    """The documents of those of these instances that are indexed without one, by instance id."""
    with engine.connect() as connection:
        rows = connection.execute(MISSING, {"uids": list(sop_instance_uids)}).all()
    made = []
    for row in rows:
        try:
            made.append(
                (int(row.id), read_again(bytes(row.header), row.received_size_bytes, row.received_transfer_syntax_uid))
            )
        except Exception as error:  # a header pydicom cannot read again either: left without one, logged
            LOGGER.warning("instance %d: no DICOM JSON made (%s)", row.id, type(error).__name__)
    return made


def read_again(header: bytes, received_size_bytes: int, received_transfer_syntax_uid: str) -> InstanceDocument:
    """The document of a header the ingest read and kept, read again as the ingest reads
    (`checked_header`: 90 to 120 µs for a CT header, pydicom's reading 190 to 210 µs), or as pydicom
    reads it should that fail."""
    try:
        dataset: Dataset | None = checked_header(header)[0]
    except Exception:  # pydicom's reading is the more lenient
        dataset = None
    return document_of_header(header, received_size_bytes, received_transfer_syntax_uid, dataset)


def stored(engine: Engine, made: list[tuple[int, InstanceDocument]], last_change_id: int) -> bool:
    """Store the documents and move the cursor to `last_change_id`, in one transaction; False when
    another writer came first (a document stored, an instance deleted): nothing is stored then, and
    the round is done again."""
    rows = [
        {"instance_pk": instance_id, "document": document.document, "pixel_data_vr": document.pixel_data_vr}
        for instance_id, document in made
    ]
    try:
        with engine.begin() as connection:
            if rows:
                connection.execute(insert(instance_metadata), rows)
            changes.advance(connection, CONSUMER, last_change_id)
    except IntegrityError:
        LOGGER.info("instance documents: another writer came first; the round is done again")
        return False
    return True
