"""The console's people: accounts (one person, one account, one role), the failed-login counters per
source address, and the long jobs started from the console or the CLI. See `appliance.accounts`
and `appliance.jobs`."""

from sqlalchemy import Boolean, Column, Date, DateTime, ForeignKey, Index, Integer, String, Table, Text

from appliance.db.schema.base import BigKey, metadata

account = Table(
    "account",
    metadata,
    Column("id", BigKey, primary_key=True),
    Column("username", String(64), nullable=False, unique=True),  # lower case
    Column("full_name", String(200), nullable=False),
    # secretary, technologist, radiologist, administrator, maintenance (accounts.roles.Role)
    Column("role", String(32), nullable=False),
    Column("password_hash", String(200), nullable=False),  # argon2id, never a password
    # Associates, collaborators and substitute doctors (S3) may hold an account for a period only.
    Column("valid_from", Date, nullable=True),
    Column("valid_until", Date, nullable=True),
    Column("disabled", Boolean, nullable=False, server_default="0"),
    Column("note", String(200), nullable=False, server_default=""),  # e.g. "remplaçant du Dr Martin"
    Column("failed_logins", Integer, nullable=False, server_default="0"),
    Column("locked_until", DateTime(timezone=True), nullable=True),
    # Raised at each logout, password change, lock or role change: older session cookies stop working.
    Column("session_version", Integer, nullable=False, server_default="0"),
    Column("last_login_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(64), nullable=False, server_default=""),
)

# Failed logins per source address, whatever the account tried (guessing many accounts from one place).
login_throttle = Table(
    "login_throttle",
    metadata,
    Column("address", String(64), primary_key=True),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("last_failure_at", DateTime(timezone=True), nullable=False),
    Column("locked_until", DateTime(timezone=True), nullable=True),
)

# Tokens a tool presents instead of a session (DICOMweb for Weasis, scripts): only their SHA-256 is
# kept; each expires, and a one-time token is consumed by its first use (Weasis manifests).
access_token = Table(
    "access_token",
    metadata,
    Column("id", BigKey, primary_key=True),
    Column("account_pk", BigKey, ForeignKey("account.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("digest", String(64), nullable=False, unique=True),  # SHA-256 of the token, never the token
    Column("purpose", String(32), nullable=False),  # dicomweb, or one-time (consumed by its first use)
    Column("note", String(200), nullable=False, server_default=""),  # what it was made for
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    Column("used_at", DateTime(timezone=True), nullable=True),
)

job = Table(
    "job",
    metadata,
    Column("id", BigKey, primary_key=True),
    Column("kind", String(32), nullable=False),  # verify, reindex, compress
    Column("arguments", Text, nullable=False, server_default="{}"),  # JSON
    # waiting, running, succeeded, failed, cancelled
    Column("state", String(16), nullable=False),
    Column("done", Integer, nullable=False, server_default="0"),
    Column("total", Integer, nullable=False, server_default="0"),
    Column("step", String(200), nullable=False, server_default=""),  # what it is doing now, for people
    Column("cancel_requested", Boolean, nullable=False, server_default="0"),
    Column("result", Text, nullable=False, server_default=""),  # JSON summary once finished
    Column("error", Text, nullable=False, server_default=""),
    Column("started_by", String(64), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Index("ix_job_state_id", "state", "id"),
)
