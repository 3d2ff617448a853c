"""Writing a feed's new stories: a statement per batch, with their search vectors and tag links, one array
per column.

Django's bulk_create sends one parameter per field and story (46,000 for a feed of 1,000 entries) because
the story's bytea and tsvector columns keep it from its own UNNEST form, the search vectors then need an
UPDATE that writes every row a second time, and tag links a model instance each.
"""

from collections.abc import Iterable
from contextlib import ExitStack

from django.db import connections

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
        values = [field.pre_save(story, True) for story in stories]
        column = f"{table}.{quote(field.column)}"
        read_by_row = field.name == "entry_key" or column in vector_sql
        if not read_by_row and all(value == values[0] for value in values):
            # A value every story shares (its source, its section, an empty field) is sent once.
            selected.append(f"%s::{db_type.split('(')[0]}")
            selected_params.append(field.get_db_prep_save(values[0], connection))
            continue
        selected.append(column)
        array_sql, array_param = _array([field.get_db_prep_save(value, connection) for value in values], db_type)
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


def _array(values: list, db_type: str) -> tuple[str, object]:
    """SQL for an array of `values` of `db_type` (without its length: a value too long fails as it would in
    a plain INSERT instead of being cut), and its parameter. Text goes as one string the database splits:
    quoting each of a thousand array elements in Python took half the time of building the statement."""
    db_type = db_type.split("(")[0]
    if _joinable(values):
        return f"string_to_array(%s, chr({ord(_SEPARATOR)}))::{db_type}[]", _SEPARATOR.join(values)
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
