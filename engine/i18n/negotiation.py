"""Which of the supported languages a caller gets: `Accept-Language` (RFC 9110, with quality
values), then the language stored for the user, then English.

Tags are read with Babel (`Locale.parse`, with CLDR's likely subtags), so a region or script
decides the Chinese variant the way CLDR does: zh-Hant, zh-TW, zh-HK and zh-MO are Traditional
(zh-TW); zh, zh-Hans, zh-CN and zh-SG are Simplified (zh-CN).
"""

from __future__ import annotations

from babel import Locale, UnknownLocaleError

#: The languages metacrm ships messages for; the first is the fallback of last resort.
LANGUAGES: tuple[str, ...] = ("en", "zh-CN", "zh-TW")
DEFAULT = LANGUAGES[0]
MAX_HEADER = 1024  # longer headers are cut, not parsed: a client gains nothing from 10 kB of tags


def supported(tag: str | None) -> str | None:
    """The supported language a tag means (`zh-hk` -> zh-TW, `en-GB` -> en), or None."""
    text = (tag or "").strip().replace("_", "-")
    if not text or text == "*" or len(text) > 64:
        return None
    try:
        locale = Locale.parse(text, sep="-")
    except (UnknownLocaleError, ValueError, TypeError):
        return None
    if locale.language == "en":
        return "en"
    if locale.language != "zh":
        return None
    subtags = {part.lower() for part in text.split("-")[1:]}
    if "hant" in subtags or ("hans" not in subtags and locale.script == "Hant"):
        return "zh-TW"
    return "zh-CN"


def _ranges(header: str) -> list[tuple[float, int, str]]:
    """(quality, position, tag) of each language range in an Accept-Language header."""
    found = []
    for position, part in enumerate(header[:MAX_HEADER].split(",")):
        tag, _, params = part.partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0  # a malformed weight counts as "not acceptable"
        if tag.strip() and 0 < quality <= 1:
            found.append((quality, position, tag.strip()))
    return found


def negotiate(header: str | None, fallback: str | None = None) -> str:
    """The best supported language for an `Accept-Language` header: highest quality first (ties in
    the order sent), then `fallback` (the user's stored language), then English."""
    for _, _, tag in sorted(_ranges(header or ""), key=lambda r: (-r[0], r[1])):
        language = supported(tag)
        if language:
            return language
    return supported(fallback) or DEFAULT
