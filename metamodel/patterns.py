"""Admin-written `pattern` regexes, run with RE2: time linear in the input, whatever the pattern.

Python's `re` backtracks, so a pattern such as `(a+)+$` takes exponential time on a value an
end user types. RE2 never backtracks; it has no back-references or look-arounds, so a pattern
that needs them is refused when the metadata is checked, with RE2's reason. Classes such as
`\\d`, `\\w` and `\\s` are ASCII in RE2; use `\\p{L}` (any letter) or `\\p{Han}` for others.
"""

from __future__ import annotations

from functools import lru_cache

import re2

from metacrm.metamodel.errors import MetacrmError

MAX_PATTERN = 1_000  # characters of one pattern
_MEMORY = 1 << 20  # bytes RE2 may use for one compiled pattern (it refuses larger programs)


class PatternError(MetacrmError, ValueError):
    """A pattern RE2 cannot run; the message says why, for the admin."""


def _options(**settings) -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # RE2 would print to stderr; the caller reports the problem instead
    options.max_mem = _MEMORY
    for name, value in settings.items():
        setattr(options, name, value)
    return options


@lru_cache(maxsize=512)
def compile_pattern(pattern: str):
    """The compiled RE2 program for `pattern` (cached), or PatternError."""
    if len(pattern) > MAX_PATTERN:
        raise PatternError(f"a pattern has at most {MAX_PATTERN} characters")
    try:
        return re2.compile(pattern, _options())
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(f"{reason} (patterns use RE2 syntax: no back-references or look-arounds)") from None
    except (TypeError, UnicodeEncodeError):
        raise PatternError("a pattern must be valid Unicode text") from None


def full_match(pattern: str, text: str) -> bool:
    """Whether all of `text` matches `pattern`, in time linear in len(text)."""
    return compile_pattern(pattern).fullmatch(text) is not None


def replace_literal(text: str, literal: str, replacement: str) -> str:
    """`text` with every case-insensitive occurrence of `literal` replaced (linear time)."""
    program = re2.compile(literal, _options(literal=True, case_sensitive=False))
    return program.sub(lambda match: replacement, text)
