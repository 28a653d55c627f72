"""Bulk writes of many rows, each with values of its own, in one statement per chunk (for
every app: the registry is the ground floor).

Django's `bulk_update` writes `SET f = CASE WHEN pk = 1 THEN ... END` for every field, and its
psycopg cursors quote every value into the statement: for a batch of results (a few hundred
cells, thirty fields) that costs most of a second of CPU. On PostgreSQL these write one array
per column instead (`UPDATE ... FROM unnest(%s, %s, ...)`, `INSERT ... SELECT * FROM unnest`),
bound on the server, each value prepared by its field exactly as `save()` prepares it;
elsewhere (SQLite, `make run`) they are Django's `bulk_update` and `bulk_create`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import psycopg
from django.db import connection, connections
from django.db.models import Field, Model

CHUNK = 1000


def _primary_key(model: type[Model]) -> Field:
    pk = model._meta.pk
    if pk is None:
        raise TypeError(f"{model.__name__} has no primary key")
    return pk


def _columns(objs: Sequence[Model], fields: Sequence[Field], *, add: bool) -> list[list[object]]:
    """One list per field: its prepared value for each object (prepared against the
    connection itself, not the thread-local proxy that every attribute read goes through)."""
    wrapper = connections[connection.alias]
    if add:
        return [
            [field.get_db_prep_save(field.pre_save(obj, add=True), wrapper) for obj in objs]
            for field in fields
        ]
    return [
        [field.get_db_prep_save(getattr(obj, field.attname), wrapper) for obj in objs]
        for field in fields
    ]


def _quoted(field: Field) -> str:
    """The field's column name, quoted."""
    return connection.ops.quote_name(str(field.column))


def _unnest(fields: Sequence[Field]) -> str:
    """`unnest(%s::type[], ...)`: the arrays of the fields' columns, typed as the columns."""
    types = [field.db_type(connection) or "" for field in fields]
    return "unnest(" + ", ".join(f"%b::{db_type}[]" for db_type in types) + ")"


def _execute(sql: str, params: list[list[object]]) -> list[tuple]:
    """Run `sql` on Django's connection (in its transaction), its errors Django's."""
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def bulk_update(objs: Sequence[Model], fields: Sequence[str], *, chunk: int = CHUNK) -> None:
    """Write `fields` of every object of one model (its primary key picks the row)."""
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor != "postgresql":
        model._default_manager.bulk_update(objs, list(fields), batch_size=chunk)
        return
    meta, pk = model._meta, _primary_key(model)
    written = [cast(Field, meta.get_field(name)) for name in fields]
    table = connection.ops.quote_name(meta.db_table)
    names = ", ".join(_quoted(field) for field in [pk, *written])
    assignments = ", ".join(f"{_quoted(field)} = v.{_quoted(field)}" for field in written)
    sql = (
        f"UPDATE {table} SET {assignments} "  # noqa: S608 - names, not data
        f"FROM {_unnest([pk, *written])} AS v({names}) "
        f"WHERE {table}.{_quoted(pk)} = v.{_quoted(pk)}"
    )
    for start in range(0, len(objs), chunk):
        part = objs[start : start + chunk]
        _execute(sql, _columns(part, [pk, *written], add=False))


def bulk_insert(objs: Sequence[Model], *, chunk: int = CHUNK) -> None:
    """Insert new objects of one model and set their primary keys, as `bulk_create` does."""
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(objs, batch_size=chunk)
        return
    meta, pk = model._meta, _primary_key(model)
    written = [cast(Field, field) for field in meta.concrete_fields if not field.primary_key]
    sql = (
        f"INSERT INTO {connection.ops.quote_name(meta.db_table)} "  # noqa: S608 - names
        f"({', '.join(_quoted(field) for field in written)}) "
        f"SELECT * FROM {_unnest(written)} RETURNING {_quoted(pk)}"
    )
    for start in range(0, len(objs), chunk):
        part = objs[start : start + chunk]
        keys = _execute(sql, _columns(part, written, add=True))
        for obj, (key,) in zip(part, keys, strict=True):
            setattr(obj, pk.attname, key)
            obj._state.adding = False
            obj._state.db = connection.alias
