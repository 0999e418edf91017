"""Opening a registry database and bringing its schema to the current revision.

A plain path (or nothing) means a SQLite file, created on first use; ``postgresql://`` URLs
are served by psycopg 3. The schema is made and upgraded by the Alembic migrations shipped in
``ioplan/registry/migrations``; a database left at an older revision is upgraded by
``ioplan registry init`` and refused, with that advice, by the other commands.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from ioplan.errors import FileFormatError, InputError, InputFileNotFoundError, IoplanError

__all__ = [
    "DEFAULT_DB",
    "current_revision",
    "head_revision",
    "init_db",
    "normalise_url",
    "open_db",
    "session_scope",
]

#: The database used when none is given (``--db`` or ``$IOPLAN_REGISTRY_DB``).
DEFAULT_DB = "ioplan-registry.sqlite"


class RegistryError(IoplanError, RuntimeError):
    """The registry database cannot be reached or is at an unexpected schema revision."""


def normalise_url(db: str | os.PathLike | None) -> str:
    """SQLAlchemy URL of ``db``: a path becomes ``sqlite:///path``; postgresql uses psycopg 3.

    Examples
    --------
    >>> normalise_url("reg.sqlite")
    'sqlite:///reg.sqlite'
    >>> normalise_url("postgresql://me@localhost/io")
    'postgresql+psycopg://me@localhost/io'
    """
    if db is None:
        db = os.environ.get("IOPLAN_REGISTRY_DB") or DEFAULT_DB
    text = str(db)
    if not text.strip():
        raise InputError(
            "--db is empty: give a file path (an empty path would be a database in memory, "
            "gone when the command ends)"
        )
    if "://" not in text:
        return f"sqlite:///{text}"
    scheme, rest = text.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    if scheme.startswith(("sqlite", "postgresql+")):
        try:
            in_memory = scheme.startswith("sqlite") and _sqlite_path(text) is None
        except sa.exc.ArgumentError:
            raise InputError(f"--db {redact_url(text)}: not a database URL") from None
        if in_memory:
            raise InputError(
                f"--db {text}: give a file path (a database in memory is gone when the "
                "command ends)"
            )
        return text
    raise InputError(
        f"--db {redact_url(text)}: give a file path, sqlite:///... or postgresql://..."
    )


def redact_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # a URL we cannot parse is shown by its scheme only
        return url.split("://", 1)[0] + "://..."


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA foreign_keys=ON")  # SQLite ignores ON DELETE CASCADE without it
    cur.close()


def _sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL (None: in memory)."""
    path = sa.engine.make_url(url).database
    return None if not path or path == ":memory:" or path.startswith("file::memory:") else path


#: The first bytes of every SQLite 3 database file.
_SQLITE_MAGIC = b"SQLite format 3\x00"


def _check_sqlite_file(path: str, create: bool) -> None:
    """Refuse, before connecting, a path that is not a SQLite registry (or is missing)."""
    file = Path(path).expanduser()
    if file.is_dir():
        raise InputError(f"--db {path} is a folder: give the registry's file")
    if not file.exists():
        if not create:
            raise InputFileNotFoundError(
                f"--db {path}: no registry there (create one with ioplan registry init)"
            )
        parent = file.resolve().parent
        if not parent.is_dir():
            raise InputError(f"--db {path}: folder {parent} does not exist")
        return
    try:
        with open(file, "rb") as fh:
            head = fh.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise InputError(f"--db {path}: cannot be read ({exc.strerror})") from None
    if head and head != _SQLITE_MAGIC:  # an empty file is an empty database to SQLite
        raise FileFormatError(f"--db {path}: not a SQLite database (give the registry's file)")


def _engine(url: str, create: bool = True) -> Engine:
    if url.startswith("sqlite"):
        path = _sqlite_path(url)
        if path is not None:
            _check_sqlite_file(path, create)
        engine = sa.create_engine(url, poolclass=NullPool)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # No pool: commands are short-lived, and every connection is closed when released.
    return sa.create_engine(url, poolclass=NullPool)


def _alembic_config(connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """Revision id of the newest migration shipped with this version of ioplan."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(None))
    return script.get_current_head()


def current_revision(engine: Engine) -> str | None:
    """Revision the database is at (None: no schema yet)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def init_db(db: str | os.PathLike | None = None) -> Engine:
    """Create the schema of an empty database, or upgrade an older one, to the head revision."""
    from alembic import command

    url = normalise_url(db)
    engine = _engine(url)
    try:
        # a database of other tables is left untouched: SQLite does not roll back the
        # revision table a failed upgrade would have created in it
        if current_revision(engine) is None:
            with engine.connect() as conn:
                tables = sa.inspect(conn).get_table_names()
            if tables:
                raise RegistryError(
                    f"database {redact_url(url)} has tables but no ioplan schema revision "
                    f"({', '.join(sorted(tables)[:3])}...): not an empty database or an ioplan "
                    "registry; nothing was written to it"
                )
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "head")
    except sa.exc.DatabaseError as exc:  # cannot connect, or a damaged file
        raise RegistryError(f"cannot open database {redact_url(url)}: {_first_line(exc)}") from None
    return engine


def open_db(db: str | os.PathLike | None = None, create: bool = True) -> Engine:
    """Engine on a registry at the head revision.

    A database with no schema is initialised when ``create`` (first use); one at another
    revision is refused with advice to run ``ioplan registry init``.

    A SQLite file that does not exist is created only when ``create`` (reading commands
    refuse it instead of leaving an empty file behind).
    """
    url = normalise_url(db)
    engine = _engine(url, create=create)
    try:
        rev = current_revision(engine)
        if rev is None:
            with engine.connect() as conn:
                tables = sa.inspect(conn).get_table_names()
    except sa.exc.DatabaseError as exc:
        raise RegistryError(f"cannot open database {redact_url(url)}: {_first_line(exc)}") from None
    if rev is None:
        if tables:
            raise RegistryError(
                f"database {redact_url(url)} has tables but no ioplan schema revision "
                f"({', '.join(sorted(tables)[:3])}...): not an ioplan registry"
            )
        if not create:
            raise RegistryError(f"database {redact_url(url)} is empty: run ioplan registry init")
        return init_db(db)
    head = head_revision()
    if rev != head:
        raise RegistryError(
            f"database {redact_url(url)} is at schema revision {rev}, this ioplan needs {head}: "
            "run ioplan registry init to upgrade it"
        )
    return engine


def _first_line(exc: Exception) -> str:
    return str(getattr(exc, "orig", exc)).strip().splitlines()[0]


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session whose work is one transaction: committed at the end, rolled back on error."""
    with Session(engine) as session, session.begin():
        yield session
