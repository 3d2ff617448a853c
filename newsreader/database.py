"""The hottest queries made cheaper: compiled once per process, and planned once per database connection."""

import weakref
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager

from django.db import connection
from django.db.backends.postgresql.base import CursorDebugWrapper, ServerBindingCursor
from django.db.backends.utils import CursorWrapper
from django.db.models import QuerySet


class _LoggedAsWritten(CursorDebugWrapper):
    """Logs the SQL as written: Django can only spell out a query whose values the client bound."""

    def debug_sql(self, sql=None, params=None, use_last_executed_query=False, many=False):
        return super().debug_sql(sql, params, use_last_executed_query=False, many=many)


# The database connections (psycopg's) set up for prepared statements.
_set_up: weakref.WeakSet = weakref.WeakSet()


@contextmanager
def planned_once() -> Iterator[CursorWrapper]:
    """A cursor whose queries PostgreSQL plans once per connection and then runs from the kept plan.

    Django's cursors bind parameters on the client, so PostgreSQL plans every query anew; for the story
    list's query that planning took three times as long as running it. This cursor binds them on the
    server and psycopg prepares each query on its first run (behind a pooler that cannot keep prepared
    statements, set `prepare_threshold` to None in the database OPTIONS: then it is the ordinary cursor).
    Only for SQL written out with `%s` placeholders whose best plan does not depend on the values, and
    with its LIMIT written in (a generic plan cannot see a LIMIT's value). It is instrumented like
    any other cursor (query logging, execute wrappers); on other databases it is the ordinary cursor."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw_connection = connection.connection
    if raw_connection not in _set_up:
        if connection.in_atomic_block or "prepare_threshold" in connection.settings_dict["OPTIONS"]:
            # A session setting made in a transaction leaves with its rollback: set up outside one. And an
            # operator's prepare_threshold (None behind a pooler) is theirs.
            with connection.cursor() as cursor:
                yield cursor
            return
        # Django leaves it None (off); only server-side binding cursors like this one ever prepare, so the
        # connection's prepared statements are this cursor's alone. They run from their generic plan,
        # which PostgreSQL, left to choose, passes over on a large table for planning anew every time
        # (the same plan, its cost reckoned from the values at hand rather than guessed).
        raw_connection.prepare_threshold = 0
        raw_connection.execute("SET plan_cache_mode = force_generic_plan")
        _set_up.add(raw_connection)
    with connection.wrap_database_errors:
        raw = ServerBindingCursor(raw_connection)
    cursor = _LoggedAsWritten(raw, connection) if connection.queries_logged else connection.make_cursor(raw)
    with cursor:
        yield cursor


# Stand-ins for the values a query is compiled with: numbers no id or count takes, text no slug takes.
_FIRST_MARKER = -987_654_321
_TEXT_MARKER = "\x00compiled-once-{}"
_compiled: dict[Hashable, tuple[str, tuple, dict[int, str]] | None] = {}


def rows_compiled_once(
    shape: Hashable, build: Callable[..., QuerySet], *, planned: bool = False, **values: int | str
) -> list[tuple]:
    """The rows of the values queryset `build(**values)`, with its SQL compiled once per process for each
    `shape` (a key naming everything else `build` depends on, the type of each value included) and run
    with these `values` (numbers or text) after.

    Building and compiling a query of a few subqueries through the ORM cost five times what PostgreSQL
    spends answering it. The SQL is compiled from stand-ins for `values` and kept with where each
    stands among its parameters; a query that writes one of them into the SQL itself (as a LIMIT) is
    never kept and always goes through the ORM, as do queries on other databases, whose rows the ORM
    converts (SQLite's dates). With `planned`, the query is also planned once per connection (`planned_once`)."""
    if connection.vendor != "postgresql":
        return list(build(**values))
    if shape not in _compiled:
        _compiled[shape] = _compile(build, values)
    compiled = _compiled[shape]
    if compiled is None:
        return list(build(**values))
    sql, params, slots = compiled
    with planned_once() if planned else connection.cursor() as cursor:
        cursor.execute(sql, [values[slots[index]] if index in slots else value for index, value in enumerate(params)])
        return cursor.fetchall()


def _compile(build: Callable[..., QuerySet], values: dict[str, int | str]) -> tuple[str, tuple, dict[int, str]] | None:
    markers = {
        name: _TEXT_MARKER.format(number) if isinstance(value, str) else _FIRST_MARKER - number
        for number, (name, value) in enumerate(values.items())
    }
    names = list(values)
    queryset = build(**markers)
    sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    by_marker = {marker: name for name, marker in markers.items()}
    slots = {index: by_marker[value] for index, value in enumerate(params) if _is_marker(value, by_marker)}
    if set(slots.values()) != set(names) or any(str(marker) in sql for marker in by_marker):
        return None
    return sql, tuple(params), slots


def _is_marker(value: object, markers: dict[int | str, str]) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool) and value in markers
