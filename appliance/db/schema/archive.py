"""The archive's tables: study / series / instance (the patient is in `patients`), headers,
quarantined duplicates and storage commitment requests.

Strings are stored as Unicode whatever character set the object came in; person names also get a
folded key (upper case, accents removed) so that PN matching is case- and accent-insensitive and
uses an index (PS3.4 C.2.2.2.1 allows it for PN). Every attribute a query can match on is indexed.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from appliance.db.schema.base import PERSON_NAME, UID, BigKey, metadata

study = Table(
    "study",
    metadata,
    Column("id", BigKey, primary_key=True),
    Column("patient_pk", BigKey, ForeignKey("patient.id"), nullable=False, index=True),
    Column("study_instance_uid", UID, nullable=False, unique=True),
    Column("study_date", String(8), nullable=False, server_default="", index=True),
    Column("study_time", String(16), nullable=False, server_default=""),
    Column("accession_number", String(16), nullable=False, server_default="", index=True),
    Column("study_id", String(16), nullable=False, server_default=""),
    Column("study_description", String(64), nullable=False, server_default=""),
    Column("referring_physician_name", PERSON_NAME, nullable=False, server_default=""),
    Column("referring_physician_name_key", PERSON_NAME, nullable=False, server_default=""),
    Column("modalities_in_study", String(64), nullable=False, server_default=""),
    Column("number_of_series", Integer, nullable=False, server_default="0"),
    Column("number_of_instances", Integer, nullable=False, server_default="0"),
    Column("size_bytes", BigInteger, nullable=False, server_default="0"),
    Column("received_at", DateTime(timezone=True), nullable=False, index=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Legal hold (R2): a frozen study is never listed as past its retention date, never purged.
    Column("frozen_at", DateTime(timezone=True), nullable=True),
    Column("frozen_by", String(64), nullable=False, server_default=""),
    Column("frozen_reason", Text, nullable=False, server_default=""),
    # A purge confirmed by an administrator (R2): from this mark on the study is hidden from every
    # query, retrieve and page; its files and rows are then removed, a restart finishing the work.
    # No index: NULL almost everywhere, an index would lure SQLite's planner into scanning every study.
    Column("purge_requested_at", DateTime(timezone=True), nullable=True),
    Column("purge_requested_by", String(64), nullable=False, server_default=""),
    Column("purge_reason", Text, nullable=False, server_default=""),
    Column("purge_recorded_at", DateTime(timezone=True), nullable=True),  # its 110105 audit event written
    # The console's study list: newest first, one page after another by position (keyset).
    Index("ix_study_date_time_id", "study_date", "study_time", "id"),
)

series = Table(
    "series",
    metadata,
    Column("id", BigKey, primary_key=True),
    Column("study_pk", BigKey, ForeignKey("study.id"), nullable=False, index=True),
    Column("series_instance_uid", UID, nullable=False, unique=True),
    Column("modality", String(16), nullable=False, server_default="", index=True),
    Column("series_number", Integer, nullable=True),
    Column("series_date", String(8), nullable=False, server_default=""),
    Column("series_time", String(16), nullable=False, server_default=""),
    Column("series_description", String(64), nullable=False, server_default=""),
    Column("body_part_examined", String(16), nullable=False, server_default=""),
    Column("number_of_instances", Integer, nullable=False, server_default="0"),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

instance = Table(
    "instance",
    metadata,
    Column("id", BigKey, primary_key=True),
    Column("series_pk", BigKey, ForeignKey("series.id"), nullable=False, index=True),
    Column("sop_instance_uid", UID, nullable=False, unique=True),
    Column("sop_class_uid", UID, nullable=False),
    Column("instance_number", Integer, nullable=True),
    Column("rows", Integer, nullable=True),
    Column("columns", Integer, nullable=True),
    Column("number_of_frames", Integer, nullable=True),
    Column("transfer_syntax_uid", UID, nullable=False),
    Column("received_transfer_syntax_uid", UID, nullable=False),
    Column("lossy", Boolean, nullable=False),
    Column("path", String(512), nullable=False, unique=True),
    Column("size_bytes", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("received_sha256", String(64), nullable=False),
    Column("received_size_bytes", BigInteger, nullable=False),
    Column("calling_ae_title", String(16), nullable=False, server_default=""),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("compressed_at", DateTime(timezone=True), nullable=True),
    # Where the file is (R1): "immediate" (under archive/ at `path`) or a deferred tier, "folder"
    # (another mount point) or "s3" (an object store), at `location` there.
    Column("tier", String(16), nullable=False, server_default="immediate", index=True),
    Column("location", String(1024), nullable=False, server_default=""),
    Column("moved_at", DateTime(timezone=True), nullable=True),
    # A lossy copy the deferred tier made of an instance (tiers.lossy): the SOP Instance UID of the
    # original it replaced (its uncompressed predecessor, also in its Source Image Sequence); NULL
    # for everything else. `lossy` is then true as well.
    Column("lossy_source_uid", UID, nullable=True),
)

# The header of each instance (everything before the pixel data), kept at ingest so that
# series metadata (DICOMweb, viewers) never needs a file read per image.
instance_header = Table(
    "instance_header",
    metadata,
    Column("instance_pk", BigKey, ForeignKey("instance.id", ondelete="CASCADE"), primary_key=True),
    Column("header", LargeBinary, nullable=False),
)

# Each instance's DICOM JSON (PS3.18 F.2), made once (by the worker after a C-STORE,
# `archive.documents`; at once for STOW-RS) so that DICOMweb metadata and viewers never read a file
# per image. Without the file meta information, the pixel data and the patient's identity: those
# are written in when it is served (the transfer syntax and the identity in force then, the pixel
# data as a BulkDataURI), so a compression or a merge never makes it stale.
instance_metadata = Table(
    "instance_metadata",
    metadata,
    Column("instance_pk", BigKey, ForeignKey("instance.id", ondelete="CASCADE"), primary_key=True),
    Column("document", Text, nullable=False),  # a JSON object: tag -> {"vr", "Value"...}
    Column("pixel_data_vr", String(2), nullable=False, server_default=""),  # OB, OW, or "" (no pixels)
)

# An instance indexed by a commit that was not flushed on its own (`group_commit`: the SQLite index
# shares the files' file system, one `syncfs` then makes the file and the commit durable together).
# Written in the same transaction as the instance, deleted by the next one once that sync returned:
# after a crash, a row still listed here is checked against its file at start-up
# (`integrity.recover_unsynced`), and removed with it when the file never reached the disk whole.
unsynced_instance = Table(
    "unsynced_instance",
    metadata,
    Column("instance_pk", BigKey, ForeignKey("instance.id", ondelete="CASCADE"), primary_key=True),
)

# A second object with a known SOP Instance UID but other bytes: kept aside, never lost.
quarantined_duplicate = Table(
    "quarantined_duplicate",
    metadata,
    Column("id", BigKey, primary_key=True),
    Column("sop_instance_uid", UID, nullable=False, index=True),
    Column("path", String(512), nullable=False, unique=True),
    Column("size_bytes", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("calling_ae_title", String(16), nullable=False, server_default=""),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

# Storage commitment requests (N-ACTION) and the report sent back (N-EVENT-REPORT).
commitment_request = Table(
    "commitment_request",
    metadata,
    Column("id", BigKey, primary_key=True),
    Column("transaction_uid", UID, nullable=False, index=True),
    Column("calling_ae_title", String(16), nullable=False),
    Column("requested_items", Integer, nullable=False),
    Column("committed_items", Integer, nullable=True),
    Column("failed_items", Integer, nullable=True),
    Column("status", String(16), nullable=False),  # RECEIVED, QUEUED (report in the outbox), REPORTED
    Column("referenced_instances", Text, nullable=False, server_default="[]"),  # JSON [[SOP class, SOP instance], ...]
    Column("detail", Text, nullable=False, server_default=""),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("reported_at", DateTime(timezone=True), nullable=True),
)
