"""The one SQLAlchemy MetaData every table is declared on, and the column types they share."""

from sqlalchemy import BigInteger, Integer, MetaData, String

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# 64-bit keys on PostgreSQL; SQLite needs INTEGER PRIMARY KEY to use its rowid.
BigKey = BigInteger().with_variant(Integer, "sqlite")
UID = String(64)  # PS3.5 6.2: UI values are at most 64 characters
PERSON_NAME = String(324)  # PS3.5 6.2: PN, 64 characters per component group, 5 groups and separators
