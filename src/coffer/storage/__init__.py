"""Physical storage backends behind one interface (``storage.base.Backend``)."""

from __future__ import annotations

from coffer.storage.base import Backend


def open_storage(kind: str, options: dict[str, str]) -> Backend:
    """The backend a ``storage "<kind>" { ... }`` stanza names, opened."""
    if kind == "inmem":
        from coffer.storage.inmem import InmemStorage

        return InmemStorage()
    if kind == "sqlite":
        from coffer.storage.sqlite import SqliteStorage

        return SqliteStorage(options["path"])
    if kind == "postgresql":
        from coffer.storage.postgresql import PostgresqlStorage

        return PostgresqlStorage.from_options(options)
    raise ValueError(f'storage type "{kind}" is not available; use inmem, sqlite or postgresql')
