"""The one SQLAlchemy MetaData every domain table is declared on."""

from sqlalchemy import BigInteger, Integer, MetaData

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
