"""COPY of rows into a PostgreSQL table, each value bound as its column binds it
(``common.db.write_rows`` and ``copy_rows`` stream their rows through it)."""

from __future__ import annotations

import json
import json.encoder
import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import psycopg
import sqlalchemy as sa
from psycopg.adapt import PyFormat
from psycopg.types.json import Json


def copy_into(
    conn: sa.Connection,
    cursor: psycopg.Cursor[Any],
    table: sa.Table,
    into: str,
    columns: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    first: int | None = None,
    order: str = "",
) -> None:
    """COPY of ``rows``' ``columns`` (values bound as ``table``'s columns bind them) into
    table ``into``, each row followed by its number from ``first`` (in column ``order``)
    when that is given.

    In PostgreSQL's binary format when every value fits its column's binary form
    (``_binary_types``): formatting instants and numbers as text cost more than the
    rest of the write. Otherwise (a type the binary path does not know, a value of
    another Python type than its column takes, a naive instant) in text, where the
    server parses each value as a literal."""
    dialect = conn.dialect
    processors = [_copy_processor(table.c[c].type, dialect, cursor) for c in columns]
    # Only the columns whose type converts the value (most bind as they are).
    converted = [(i, process) for i, process in enumerate(processors) if process is not None]
    names = ", ".join(f'"{c}"' for c in columns)
    if first is not None:
        names += f', "{order}"'
    if len(columns) == 1:
        values = [[row[columns[0]]] for row in rows]
    else:
        get = operator.itemgetter(*columns)  # the row's values in one call, in C
        values = [list(get(row)) for row in rows]
    for i, process in converted:
        # A value the row before held too (the batch's one ``now``, a shared empty
        # list) is converted once: the bind processors are functions of the value.
        seen: Any = _NOTHING
        done: Any = None
        for row_values in values:
            value = row_values[i]
            if value is not seen:
                seen, done = value, process(value)
            row_values[i] = done
    if first is not None:
        for number, row_values in enumerate(values, first):
            row_values.append(number)
    types = _binary_types(cursor, into, [*columns, order] if first is not None else columns)
    binary = types is not None and _fit_binary(types, values)
    form = " (FORMAT BINARY)" if binary else ""
    with cursor.copy(f'COPY "{into}" ({names}) FROM STDIN{form}') as copy:
        if binary:
            # A json column's value is its text already: written by the text dumper.
            copy.set_types([_TEXT if t == _JSON else t for t in cast("list[int]", types)])
        write_row = copy.write_row
        for row_values in values:
            write_row(row_values)


# What a value may be for the binary form of each type (by oid); None fits every one.
_BINARY_TAKES: dict[int, frozenset[type]] = {
    25: frozenset({str}),  # text
    1043: frozenset({str}),  # varchar
    114: frozenset({str}),  # json (its binary form is its text)
    20: frozenset({int}),  # int8
    23: frozenset({int}),  # int4
    21: frozenset({int}),  # int2
    701: frozenset({float}),  # float8
    16: frozenset({bool}),  # bool
    1184: frozenset({datetime}),  # timestamptz (aware ones only: see _fit_binary)
}
_TIMESTAMPTZ, _JSON, _TEXT = 1184, 114, 25
_NOTHING = object()
_NONE = type(None)


def _binary_types(
    cursor: psycopg.Cursor[Any], into: str, columns: Sequence[str]
) -> list[int] | None:
    """The type (oid) of each of ``columns`` in table ``into`` as the database has it, or
    None if one has a type the binary path does not write."""
    cursor.execute(
        "SELECT attname, atttypid::int FROM pg_attribute"
        " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        (f'"{into}"',),
    )
    found = dict(cursor.fetchall())
    types = [found.get(c) for c in columns]
    if any(t not in _BINARY_TAKES for t in types):
        return None
    return cast("list[int]", types)


def _fit_binary(types: Sequence[int], values: Sequence[Sequence[Any]]) -> bool:
    """Every value is None or of a Python type the binary form of its column takes
    (``bool`` is no ``int`` here: types compare exactly), and every instant is aware.
    Checked column by column on the rows transposed (``zip``, ``map`` and ``set`` run
    in C: a Python step per row cost more than the COPY's own formatting)."""
    for type_oid, column in zip(types, zip(*values, strict=True), strict=False):
        seen = set(map(type, column))
        seen.discard(_NONE)
        if not seen <= _BINARY_TAKES[type_oid]:
            return False
        if type_oid == _TIMESTAMPTZ and None in map(_tzinfo, filter(None, column)):
            return False
    return True


_tzinfo = operator.attrgetter("tzinfo")


def _one_shot_encoder() -> Callable[[Any], str]:
    """``json.dumps`` with its default options (the text psycopg's JSON dumper writes,
    byte for byte), without what ``json.dumps`` does per call before it encodes:
    building a ``JSONEncoder`` and its C encoder (more than half of its time for
    the small objects a row holds). The C encoder's options are those ``dumps``
    gives it; only the circular-reference markers are new per call, as there."""
    # getattr: typeshed does not declare the C accelerator, which may be absent.
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # a Python without the C accelerator: json.dumps as it is
        return json.dumps
    defaults = json.JSONEncoder()
    options = (
        defaults.default,
        json.encoder.encode_basestring_ascii,  # ensure_ascii
        None,  # indent
        defaults.key_separator,
        defaults.item_separator,
        defaults.sort_keys,
        defaults.skipkeys,
        defaults.allow_nan,
    )

    def dumps(value: Any) -> str:
        if isinstance(value, str):  # as JSONEncoder.encode does
            return json.encoder.encode_basestring_ascii(value)
        return "".join(make({}, *options)(value, 0))

    return dumps


# What the JSON columns' values become in a COPY: exactly ``json.dumps(value)``.
json_dumps_text = _one_shot_encoder()


def _copy_processor(
    type_: sa.types.TypeEngine[Any], dialect: sa.Dialect, cursor: psycopg.Cursor[Any]
) -> Callable[[Any], Any] | None:
    """What a value of a column of ``type_`` becomes before psycopg formats it for COPY:
    the type's bind processor, except that a JSON object or array goes as the text
    psycopg's JSON dumper would write for it (its ``dumps``), without the wrapper
    object and the dumper call per value that cost more than the encoding."""
    impl = type_.dialect_impl(dialect)
    process = impl.bind_processor(dialect)
    if process is None or not isinstance(impl, sa.JSON):
        return process
    dumps = cursor.adapters.get_dumper(Json, PyFormat.TEXT)(Json, cursor).dumps  # type: ignore[attr-defined]
    if dumps is json.dumps:
        dumps = json_dumps_text

    def text_of(value: Any) -> str:
        text = dumps(value)
        return text if isinstance(text, str) else bytes(text).decode()

    empty_list = text_of([])  # many rows hold one (no fields erased)

    def to_json(value: Any) -> Any:
        if type(value) is list:
            return text_of(value) if value else empty_list
        if type(value) is dict:
            return text_of(value)
        return process(value)  # None, SQL NULL, scalars: as the type binds them

    return to_json
