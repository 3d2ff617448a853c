"""Hand-written queries on the hottest paths, planned once per database connection."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection
from django.db.backends.postgresql.base import CursorDebugWrapper, ServerBindingCursor
from django.db.backends.utils import CursorWrapper


class _LoggedAsWritten(CursorDebugWrapper):
    """Logs the SQL as written: Django can only spell out a query whose values the client bound."""

    def debug_sql(self, sql=None, params=None, use_last_executed_query=False, many=False):
        return super().debug_sql(sql, params, use_last_executed_query=False, many=many)


@contextmanager
def planned_once() -> Iterator[CursorWrapper]:
    """A cursor whose queries PostgreSQL plans once per connection and then runs from the kept plan.

    Django's cursors bind parameters on the client, so PostgreSQL plans every query anew; for the story
    list's query that planning took three times as long as running it. This cursor binds them on the
    server and psycopg prepares each query on its first run (behind a pooler that cannot keep prepared
    statements, set `prepare_threshold` to None in the database OPTIONS: that is kept). Only for SQL
    written out with `%s` placeholders whose plan does not depend on the values. It is instrumented like
    any other cursor (query logging, execute wrappers); on other databases it is the ordinary cursor."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    if "prepare_threshold" not in connection.settings_dict["OPTIONS"]:
        # Django leaves it None (off): only server-side binding cursors like this one ever prepare.
        connection.connection.prepare_threshold = 0
    with connection.wrap_database_errors:
        raw = ServerBindingCursor(connection.connection)
    cursor = _LoggedAsWritten(raw, connection) if connection.queries_logged else connection.make_cursor(raw)
    with cursor:
        yield cursor
