"""A story's hero image: where it comes from, how it is checked and stored, and who chose it."""
