"""Errors the command line reports as a message and exit status 2 (usage), never a traceback."""

from __future__ import annotations


class UsageError(Exception):
    pass
