"""Alembic environment of the ioplan registry.

ioplan runs migrations itself (``ioplan registry init``); the connection is handed over in
``config.attributes["connection"]``. Run from the alembic command line, the URL comes from
``sqlalchemy.url`` in the configuration instead.
"""

from alembic import context
from sqlalchemy import engine_from_config, pool

from ioplan.registry._models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by table copy
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as conn:
        _run(conn)
