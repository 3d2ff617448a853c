"""Bringing stories in from outside: safe fetching, feed parsing, de-duplication and article extraction."""
