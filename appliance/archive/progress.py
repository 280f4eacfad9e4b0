"""How long archive work (verify, reindex, adoption of orphans, compression) says how far it is.

The work calls `progress(step, done, total)` between two units of work, never in the middle of one:
a callback may raise (a job cancelled from the console) and leave everything consistent. `step`
says in words what is being done (for people); `total` is 0 when it is not known.
"""

from __future__ import annotations

from typing import Protocol


class ProgressCallback(Protocol):
    def __call__(self, step: str, done: int, total: int) -> None: ...


def quietly(step: str, done: int, total: int) -> None:
    """The callback of a caller that does not follow the progress."""
