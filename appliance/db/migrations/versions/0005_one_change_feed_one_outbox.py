"""one change feed, one outbox, the source of patient identifiers

Workflow events (MPPS states, images available) join the archive's `change` feed, so that every
background consumer reads one feed with one kind of cursor; the HL7 outbox becomes the common
`outbox` (HL7 to the RIS, storage commitment reports, forwarding). Rows are carried over: pending
messages stay pending, and the HL7 sender's cursor keeps its place in the feed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 09:00:00
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
HL7_CONSUMER = "hl7-outbound"


def upgrade() -> None:
    with op.batch_alter_table("patient_identifier", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=8), server_default="hl7", nullable=False))
    with op.batch_alter_table("change", schema=None) as batch_op:
        batch_op.add_column(sa.Column("accession_number", sa.String(length=16), server_default="", nullable=False))
        batch_op.add_column(sa.Column("scheduled_step_pk", sa.BigInteger(), nullable=True))
        batch_op.create_index("ix_change_kind_id", ["kind", "id"], unique=False)
        batch_op.create_index("ix_change_study_instance_uid", ["study_instance_uid"], unique=False)
    with op.batch_alter_table("commitment_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("referenced_instances", sa.Text(), server_default="[]", nullable=False))
    create_outbox()
    move_workflow_events()
    move_hl7_outbox()
    op.drop_table("workflow_event")
    with op.batch_alter_table("hl7_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hl7_outbox_status"))
    op.drop_table("hl7_outbox")


def create_outbox() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", KEY, nullable=False),
        sa.Column("channel", sa.String(length=80), nullable=False),
        sa.Column("cause", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("summary", sa.String(length=200), server_default="", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("refusals", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_channel_status_id", ["channel", "status", "id"], unique=False)
        batch_op.create_index("uq_outbox_channel_cause", ["channel", "cause"], unique=True)


def move_workflow_events() -> None:
    """Append the workflow events to the change feed; the HL7 cursor follows them to their new ids."""
    connection = op.get_bind()
    events = connection.execute(
        sa.text(
            "SELECT id, kind, scheduled_step_pk, study_instance_uid, accession_number, created_at "
            "FROM workflow_event ORDER BY id"
        )
    ).all()
    cursor = connection.execute(
        sa.text("SELECT last_change_id FROM change_cursor WHERE consumer = :consumer"), {"consumer": HL7_CONSUMER}
    ).scalar()
    before = connection.execute(sa.text("SELECT COALESCE(MAX(id), 0) FROM change")).scalar() or 0
    new_cursor = before
    insert = sa.text(
        "INSERT INTO change (kind, study_instance_uid, series_instance_uid, sop_instance_uid, accession_number, "
        "scheduled_step_pk, created_at) VALUES (:kind, :study, '', '', :accession, :step, :created_at)"
    )
    for event in events:
        connection.execute(
            insert,
            {
                "kind": event.kind,
                "study": event.study_instance_uid,
                "accession": event.accession_number,
                "step": event.scheduled_step_pk,
                "created_at": event.created_at,
            },
        )
        if cursor is not None and event.id <= cursor:
            new_cursor = connection.execute(sa.text("SELECT MAX(id) FROM change")).scalar() or new_cursor
    # Consumed events keep their place; the sender resumes right after the last one it had handled.
    values = {"consumer": HL7_CONSUMER, "last": new_cursor, "now": datetime.now(UTC)}
    connection.execute(sa.text("DELETE FROM change_cursor WHERE consumer = :consumer"), values)
    connection.execute(
        sa.text("INSERT INTO change_cursor (consumer, last_change_id, updated_at) VALUES (:consumer, :last, :now)"),
        values,
    )


def move_hl7_outbox() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.text(
            "SELECT id, control_id, message_type, message, status, attempts, next_attempt_at, last_error, "
            "created_at, sent_at FROM hl7_outbox ORDER BY id"
        )
    ).all()
    insert = sa.text(
        "INSERT INTO outbox (channel, cause, kind, payload, summary, status, attempts, refusals, next_attempt_at, "
        "last_error, created_at, finished_at) VALUES ('hl7-ris', :cause, :kind, :payload, :summary, :status, "
        ":attempts, 0, :next_attempt_at, :last_error, :created_at, :finished_at)"
    )
    for row in rows:
        connection.execute(
            insert,
            {
                "cause": f"hl7-outbox:{row.id}",
                "kind": row.message_type,
                "payload": row.message,
                "summary": f"{row.message_type} {row.control_id}",
                "status": "delivered" if row.status == "sent" else "pending",
                "attempts": row.attempts,
                "next_attempt_at": row.next_attempt_at,
                "last_error": row.last_error,
                "created_at": row.created_at,
                "finished_at": row.sent_at,
            },
        )


def downgrade() -> None:
    raise NotImplementedError("0005 moves rows between tables; restore the backup taken before the upgrade")
