"""Where apps built on stories add to them, so that stories never imports those apps (comments may import
stories; stories never imports comments). Each is a signal; the other app connects to it when it is ready."""

from django.dispatch import Signal

# Sent with `request` and `story` while the story page is built, `generations` (of what the page shows,
# read before it was made; None when the cache is away: stories/pagecache.py) and `story_is_current` (the
# story was read for this request; else its counts may be up to a minute old). Each receiver returns a
# dict of template context for its own part of the page: the comments give their first page (and
# `comments_close_at`, when the page will change by itself, which the page cache keeps it no longer than).
story_page_context = Signal()

# Sent by `manage.py load_demo` once the demo stories are in place, with `stories`: the demo stories by slug.
# Each receiver adds its own demo content, and must leave it as it is when the command runs again.
demo_stories_loaded = Signal()
