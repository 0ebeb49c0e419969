"""The `metacrm` command line: metadata (plan, apply, templates) and records."""
