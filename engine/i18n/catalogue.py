"""Message catalogues: gettext `.po` files (read with Babel) whose message ids are the English
messages themselves, with `{name}` placeholders for what varies:

    msgid "unknown object '{name}'"
    msgstr "未知对象 '{name}'"

An error is raised in English where it happens (the engine's layers know no languages) and
translated where it is shown (the API's problem documents, the CLI's output): `localize` finds
the message id an English text was made from, takes the values out of it, translates them too
when they are themselves messages (a nested reason), and puts them into the translation.
`translate` does the same from a message id and parameters, for code that has both.

A catalogue is a directory of `<language>.po` files (`zh_CN.po`, `zh_TW.po`; `-` or `_`);
plugins add directories through the `metacrm_translations` hook, and an entry there overrides
a shipped one.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from babel.messages.pofile import read_po

from metacrm.engine.i18n.negotiation import DEFAULT, supported

SHIPPED = Path(__file__).resolve().parent / "messages"
MAX_DEPTH = 3  # how deep values are translated as messages of their own
WORD = re.compile(r"[A-Za-z]{2,}")


def _parts(msgid: str) -> list[tuple[str, str | None]]:
    """(literal text, placeholder name or None) of a message id."""
    return [(literal, name) for literal, name, _, _ in string.Formatter().parse(msgid)]


def _pattern(msgid: str) -> re.Pattern[str] | None:
    """A regular expression that matches the English texts made from `msgid`, capturing its values."""
    regex, seen = "", set()
    try:
        parts = _parts(msgid)
    except ValueError:
        return None
    for literal, name in parts:
        regex += re.escape(literal)
        if name is None:
            continue
        if not name.isidentifier():
            return None
        # a quoted value (a repr such as 'abc def') is taken whole before the shortest text
        regex += f"(?P={name})" if name in seen else f"(?P<{name}>'[^']*'|\"[^\"]*\"|.+?)"
        seen.add(name)
    return re.compile(regex, re.DOTALL) if seen else None


@dataclass(frozen=True, eq=False)
class Catalogue:
    """Translations by message id: {msgid: {language: text}}. Immutable: `extended` makes a new one."""

    entries: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, directories: Iterable[Path | str]) -> "Catalogue":
        """The catalogue of some directories of `<language>.po` files (later ones win)."""
        return cls().extended(directories)

    def extended(self, directories: Iterable[Path | str]) -> "Catalogue":
        """This catalogue with the entries of more directories (which win over these)."""
        entries = {msgid: dict(texts) for msgid, texts in self.entries.items()}
        for directory in directories:
            for path in sorted(Path(directory).glob("*.po")):
                language = supported(path.stem)
                if language is None:
                    raise ValueError(f"{path}: the file name must be a supported language (en, zh_CN, zh_TW)")
                with path.open("rb") as handle:
                    for message in read_po(handle):
                        if message.id and isinstance(message.id, str) and message.string and not message.fuzzy:
                            entries.setdefault(message.id, {})[language] = message.string
        return Catalogue(entries)

    @property
    def ids(self) -> list[str]:
        return sorted(self.entries)

    def translate(self, msgid: str, language: str | None, **params: Any) -> str:
        """`msgid` in `language` with `params` put in (English, the id itself, when there is no translation)."""
        texts = self.entries.get(msgid, {})
        template = texts.get(language or DEFAULT) or texts.get(DEFAULT) or msgid
        try:
            return template.format(**params)
        except (KeyError, IndexError, ValueError, AttributeError):
            return msgid.format_map(_Safe(params)) if params else msgid

    def localize(self, text: str, language: str | None, _depth: int = 0) -> str:
        """An English message in `language`: the catalogue entry it was made from, with its values
        (themselves localized when they are messages); the text unchanged when none matches.
        Of several entries that match, the most specific one whose values all translate wins."""
        if not text or not language or language == DEFAULT or _depth > MAX_DEPTH:
            return text
        exact = self.entries.get(text, {}).get(language)
        if exact is not None:
            return exact
        first = None
        for msgid, pattern in _patterns(self):
            found = pattern.fullmatch(text)
            if not found or language not in self.entries[msgid]:
                continue
            if _depth and not _worded(msgid):  # "{a}: {b}" inside a value would reword the value itself
                continue
            raw = found.groupdict()
            params = {k: v if _verbatim(msgid, k, v) else self.localize(v, language, _depth + 1)
                      for k, v in raw.items()}
            result = self.translate(msgid, language, **params)
            if not any(params[k] == v and _wordy(v) for k, v in raw.items()):
                return result
            first = first or result
        return first or text

def _wordy(value: str) -> bool:
    """Whether a value reads like English words (three or more): a message left untranslated."""
    return len(WORD.findall(value)) >= 3


def _verbatim(msgid: str, name: str, value: str) -> bool:
    """Whether a value is the user's own (quoted, in the message or by repr), never a message."""
    return f"'{{{name}}}'" in msgid or f'"{{{name}}}"' in msgid or value[:1] in ("'", '"')


def _worded(msgid: str) -> bool:
    """Whether a message id has words of its own besides its values."""
    return bool(WORD.search("".join(text for text, _ in _parts(msgid))))


class _Safe(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@cache
def _patterns(catalogue: Catalogue) -> list[tuple[str, re.Pattern[str]]]:
    """The catalogue's parameterised ids, most specific (most literal text) first."""
    found = [(msgid, _pattern(msgid)) for msgid in catalogue.entries]
    usable = [(msgid, p) for msgid, p in found if p is not None]
    literal = lambda msgid: sum(len(text) for text, _ in _parts(msgid))  # noqa: E731
    return sorted(usable, key=lambda item: (-literal(item[0]), item[0]))


@cache
def shipped() -> Catalogue:
    """The catalogue metacrm ships (read once per process; it never changes while running)."""
    return Catalogue.load([SHIPPED])


@cache
def with_directories(directories: tuple[str, ...]) -> Catalogue:
    """The shipped catalogue extended by some directories (built once per set of directories)."""
    return shipped().extended(directories) if directories else shipped()
