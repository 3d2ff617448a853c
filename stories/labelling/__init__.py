"""Labelling: every story gets a section, tags, region, language, reading time and dek from a labeller.

`service.label_story_text(...)` is the entry point; `base` defines the `Label` it returns, `embedded`
(the default, offline) and `openai` (any chat-completions endpoint) are the labellers, `learning` fits
what the embedded labeller learns from moderators' corrections, and `evaluate` measures them against
labelled data.
"""
