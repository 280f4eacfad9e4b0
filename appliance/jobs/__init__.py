"""Long jobs (verify, compress, reindex) started from the console or the command line: queued in
the index's job table, run one at a time by the background worker with their progress written to
their row, cancellable, their result kept, their start and end audited. See README.md."""

from appliance.jobs.progress import Cancelled, Progress, Stopped
from appliance.jobs.queue import (
    ACTIVE,
    CANCELLED,
    COMPRESS,
    FAILED,
    FINISHED,
    KINDS,
    REINDEX,
    RUNNING,
    SUCCEEDED,
    VERIFY,
    WAITING,
    AlreadyQueued,
    Job,
    JobError,
    NoSuchJob,
    UnknownKind,
    get,
    recent,
    request_cancel,
    submit,
)
from appliance.jobs.runner import recover, run_next

__all__ = [
    "ACTIVE",
    "CANCELLED",
    "COMPRESS",
    "FAILED",
    "FINISHED",
    "KINDS",
    "REINDEX",
    "RUNNING",
    "SUCCEEDED",
    "VERIFY",
    "WAITING",
    "AlreadyQueued",
    "Cancelled",
    "Job",
    "JobError",
    "NoSuchJob",
    "Progress",
    "Stopped",
    "UnknownKind",
    "get",
    "recent",
    "recover",
    "request_cancel",
    "run_next",
    "submit",
]
