"""Writing a feed's new stories: a statement per batch, with their search vectors and tag links, one array
per column.

Django's bulk_create sends one parameter per field and story (46,000 for a feed of 1,000 entries) because
the story's bytea and tsvector columns keep it from its own UNNEST form, the search vectors then need an
UPDATE that writes every row a second time, and tag links a model instance each. Looking up a feed's
entry keys and slugs goes the same way: one array, not a parameter per value (InArray).
"""

from collections.abc import Iterable
from contextlib import ExitStack
from datetime import datetime
from operator import attrgetter

from django.core.exceptions import EmptyResultSet
from django.db import connections, models
from django.db.models import lookups

from stories.models import _STORY_SEARCH_VECTOR, Story


class StoryInserts:
    """New stories written batch by batch, as a context manager: on PostgreSQL each batch goes in one
    INSERT … SELECT FROM UNNEST that also computes its search vectors and links its tags, sent in pipeline
    mode, so the database writes a batch while the next one is prepared; the stories get their primary keys
    when the block ends. Elsewhere each batch goes through bulk_create. Meant inside a transaction (a failed
    batch then leaves none behind); stories of one block need distinct entry keys."""

    def __init__(self) -> None:
        # The connection itself, not django.db.connection: that proxy costs a lookup on every use.
        self.connection = connections[Story.objects.db]
        self.pipelined = self.connection.vendor == "postgresql"
        self._sent: list[tuple[object, list[Story]]] = []
        self._exit_stack = ExitStack()

    def __enter__(self) -> "StoryInserts":
        if self.pipelined:
            self.connection.ensure_connection()
            self._exit_stack.enter_context(self.connection.connection.pipeline())
        return self

    def add(self, stories: list[Story], *, tag_ids: dict[str, Iterable[int]]) -> None:
        """Write `stories`, each tagged with the tags `tag_ids` gives for its entry key."""
        if not stories:
            return
        links = [(story.entry_key, tag_id) for story in stories for tag_id in tag_ids.get(story.entry_key, ())]
        if not self.pipelined:
            Story.objects.bulk_create(stories)
            through = Story.tags.through
            story_ids = {story.entry_key: story.pk for story in stories}
            through.objects.bulk_create(
                [through(story_id=story_ids[key], tag_id=tag_id) for key, tag_id in links], ignore_conflicts=True
            )
            return
        sql, params = _insert_statement(self.connection, stories, links)
        cursor = self._exit_stack.enter_context(self.connection.cursor())
        cursor.execute(sql, params)  # returns once sent; the new ids are read when the block ends
        self._sent.append((cursor, stories))

    def __exit__(self, error_type, error, traceback) -> bool | None:
        with self.connection.wrap_database_errors, self._exit_stack:
            if error is None:
                for cursor, stories in self._sent:
                    _set_primary_keys(self.connection, stories, cursor.fetchall())
        return None


class InArray(lookups.In):
    """`field IN values` (used as `filter(InArray(F(name), values))`) whose values go to PostgreSQL as one array,
    `= ANY(...)`, rather than as a parameter each: binding a feed's thousand entry keys or two thousand slugs
    one by one cost Django and psycopg more than the query took. Elsewhere it is the IN it extends."""

    def as_postgresql(self, compiler, connection):
        if not self.rhs_is_direct_value():
            return self.as_sql(compiler, connection)
        values = [value for value in self.rhs if value is not None]
        if not values:
            raise EmptyResultSet
        lhs_sql, lhs_params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        array_sql, array_param = _array(
            [field.get_db_prep_value(value, connection, prepared=True) for value in values], field.db_type(connection)
        )
        return f"{lhs_sql} = ANY({array_sql})", (*lhs_params, array_param)


def _insert_statement(connection, stories: list[Story], links: list[tuple[str, int]]) -> tuple[str, list]:
    quote = connection.ops.quote_name
    table = quote(Story._meta.db_table)
    fields = [field for field in Story._meta.concrete_fields if not field.primary_key and field.name != "search_vector"]
    query = Story.objects.all().query
    vector_sql, vector_params = query.get_compiler(connection=connection).compile(
        _STORY_SEARCH_VECTOR.resolve_expression(query)
    )
    selected, selected_params, arrays, array_params, array_names = [], [], [], [], []
    for field in fields:
        db_type = field.db_type(connection)
        values = _values_to_save(field, stories)
        column = f"{table}.{quote(field.column)}"
        read_by_row = field.name == "entry_key" or column in vector_sql
        if not read_by_row and values.count(values[0]) == len(values):
            # A value every story shares (its source, its section, an empty field) is sent once.
            selected.append(f"%s::{db_type.split('(')[0]}")
            selected_params.append(field.get_db_prep_save(values[0], connection))
            continue
        array_sql, array_param, read_sql = _array_of_field(field, values, db_type, connection)
        selected.append(read_sql.format(column))
        arrays.append(array_sql)
        array_params.append(array_param)
        array_names.append(quote(field.column))
    # The UNNEST takes the table's name as its alias, so the search vector's column references read its rows.
    # The tag links go in from the rows the INSERT returns, in the same statement. Only quoted names and
    # Django's compiled expression go into the text; every value is a parameter.
    through = Story.tags.through
    story_column, tag_column = (quote(through._meta.get_field(name).column) for name in ("story", "tag"))
    keys_sql, keys_param = _array([key for key, _ in links], Story._meta.get_field("entry_key").db_type(connection))
    tags_sql, tags_param = _array([tag_id for _, tag_id in links], through._meta.get_field("tag").db_type(connection))
    sql = (
        f"WITH {quote('new_story')} AS ("  # noqa: S608
        f"INSERT INTO {table} ({', '.join(quote(field.column) for field in fields)}, {quote('search_vector')}) "
        f"SELECT {', '.join(selected)}, {vector_sql} "
        f"FROM UNNEST({', '.join(arrays)}) AS {table} ({', '.join(array_names)}) "
        f"RETURNING {quote('id')}, {quote('entry_key')}), "
        f"{quote('new_link')} AS (INSERT INTO {quote(through._meta.db_table)} ({story_column}, {tag_column}) "
        f"SELECT {quote('new_story')}.{quote('id')}, {quote('link')}.{quote('tag_id')} "
        f"FROM UNNEST({keys_sql}, {tags_sql}) AS {quote('link')} ({quote('entry_key')}, {quote('tag_id')}) "
        f"JOIN {quote('new_story')} USING ({quote('entry_key')}) ON CONFLICT DO NOTHING) "
        f"SELECT {quote('id')}, {quote('entry_key')} FROM {quote('new_story')}"
    )
    return sql, [*selected_params, *vector_params, *array_params, keys_param, tags_param]


# The ASCII unit separator: Python's split() takes it for white space, so titles and plain text never hold it.
_SEPARATOR = "\x1f"
_TEXT_PREP_VALUE = frozenset({models.CharField.get_prep_value, models.TextField.get_prep_value})


def _values_to_save(field: models.Field, stories: list[Story]) -> list:
    """What the stories save in `field`: read from the instances, without a method call per story and field,
    when the field's pre_save is Django's own, which only reads it."""
    if type(field).pre_save is models.Field.pre_save:
        return list(map(attrgetter(field.attname), stories))
    return [field.pre_save(story, True) for story in stories]


def _sends_strings_as_they_are(field: models.Field) -> bool:
    """True for Django's text fields, whose get_db_prep_save returns a string as it is."""
    kind = type(field)
    return (
        kind.get_db_prep_save is models.Field.get_db_prep_save
        and kind.get_db_prep_value is models.Field.get_db_prep_value
        and kind.get_prep_value in _TEXT_PREP_VALUE
    )


def _array_of_field(field: models.Field, values: list, db_type: str, connection) -> tuple[str, object, str]:
    """SQL for the array of a field's `values`, its parameter, and how a row reads its element ("{}" is the
    column). Text, time stamps and bytes go as one string the database splits (and decodes): psycopg adapts
    a list element by element in Python, which for a batch's signatures and dates took as long as building
    the rest of the statement."""
    db_type = db_type.split("(")[0]
    if _sends_strings_as_they_are(field) and all(type(value) is str for value in values):
        if _joinable(values):
            return _split_string(db_type), _SEPARATOR.join(values), "{}"
    elif isinstance(field, models.BinaryField) and all(
        type(value) is bytes and value for value in values if value is not None
    ):
        # Hexadecimal has no "N": that element is NULL.
        hexadecimal = _SEPARATOR.join("N" if value is None else value.hex() for value in values)
        return f"string_to_array(%s, chr({ord(_SEPARATOR)}), 'N')", hexadecimal, "decode({}, 'hex')"
    elif isinstance(field, models.DateTimeField) and all(
        type(value) is datetime and value.utcoffset() is not None for value in values
    ):
        return _split_string(db_type), _SEPARATOR.join(value.isoformat() for value in values), "{}"
    array_sql, array_param = _array([field.get_db_prep_save(value, connection) for value in values], db_type)
    return array_sql, array_param, "{}"


def _split_string(db_type: str) -> str:
    return f"string_to_array(%s, chr({ord(_SEPARATOR)}))::{db_type}[]"


def _array(values: list, db_type: str) -> tuple[str, object]:
    """SQL for an array of `values` of `db_type` (without its length: a value too long fails as it would in
    a plain INSERT instead of being cut), and its parameter. Text goes as one string the database splits:
    quoting each of a thousand array elements in Python took half the time of building the statement."""
    db_type = db_type.split("(")[0]
    if _joinable(values):
        return _split_string(db_type), _SEPARATOR.join(values)
    return f"%s::{db_type}[]", values


def _joinable(values: list) -> bool:
    """True when `values` survive joining with _SEPARATOR and string_to_array: strings without the separator,
    and not a lone empty string (which would come back as an empty array)."""
    return (len(values) != 1 or values[0] != "") and all(
        type(value) is str and _SEPARATOR not in value for value in values
    )


def _set_primary_keys(connection, stories: list[Story], returned: list[tuple[int, str]]) -> None:
    ids = dict((entry_key, pk) for pk, entry_key in returned)
    for story in stories:
        story.pk = ids[story.entry_key]
        story._state.adding = False
        story._state.db = connection.alias
