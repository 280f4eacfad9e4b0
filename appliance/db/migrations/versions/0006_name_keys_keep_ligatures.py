"""person name keys keep ligatures as one character

The folded keys of person names (`patient.patient_name_key`, `study.referring_physician_name_key`)
used to spell ligatures out (Œ as OE, Æ as AE, ß as SS), so that the wildcard `?` (one character,
PS3.4 C.2.2.2.4) never lined up with Œ. They now keep Œ, Æ and ẞ (the capital of ß) as one
character; the keys of the names holding a ligature are computed again. The fold is written out
here (not imported) so that this migration keeps doing what it did when the application changes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-09 10:00:00
"""

import unicodedata
from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

LIGATURE_CHARACTERS = ("Œ", "œ", "Æ", "æ", "ß", "ẞ")
KEYS = (
    ("patient", "patient_name", "patient_name_key"),
    ("study", "referring_physician_name", "referring_physician_name_key"),
)
SPELLED_OUT_BEFORE = {"Œ": "OE", "Æ": "AE", "ß": "SS"}  # the fold before 0006, as it was


def upgrade() -> None:
    for table, name, key in KEYS:
        recompute(table, name, key, ligatures_kept)


def downgrade() -> None:
    for table, name, key in KEYS:
        recompute(table, name, key, ligatures_spelled_out)


def recompute(table: str, name: str, key: str, fold: Callable[[str], str]) -> None:
    """Compute `key` again from `name` for the rows of `table` whose name holds a ligature."""
    connection = op.get_bind()
    holds_ligature = " OR ".join(f"{name} LIKE :ligature{number}" for number in range(len(LIGATURE_CHARACTERS)))
    patterns = {f"ligature{number}": f"%{character}%" for number, character in enumerate(LIGATURE_CHARACTERS)}
    rows = connection.execute(sa.text(f"SELECT id, {name} FROM {table} WHERE {holds_ligature}"), patterns).all()
    update = sa.text(f"UPDATE {table} SET {key} = :key WHERE id = :id")
    for row in rows:
        connection.execute(update, {"id": row.id, "key": name_key(row[1], fold)})


def name_key(name: str, fold: Callable[[str], str]) -> str:
    """The key of a PN value: its alphabetic group folded, trailing empty components dropped."""
    return fold(name.split("=")[0]).rstrip("^ ").strip()


def without_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(character for character in decomposed if not unicodedata.combining(character))


def ligatures_kept(text: str) -> str:
    """Upper case, no accents, Œ, Æ and ẞ kept as one character each (the key from 0006 on)."""
    return without_accents(text.replace("ß", "ẞ").upper())


def ligatures_spelled_out(text: str) -> str:
    """Upper case, no accents, ligatures spelled out (the key before 0006)."""
    upper = text.upper()
    for ligature, letters in SPELLED_OUT_BEFORE.items():
        upper = upper.replace(ligature, letters)
    return without_accents(upper)
