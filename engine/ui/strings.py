"""The UI's own words (not metadata labels) in every supported language.

Metadata labels come from the model (`obj.label(language)`, `field.label(language)`); these are
the words around them: buttons, headings, messages. A missing translation falls back to English,
and tests/test_web_strings.py fails on any id without zh-CN and zh-TW.
"""

from __future__ import annotations

from metacrm.engine.ui.words import collab, lists, pools, record, shell

LANGUAGES = ("en", "zh-CN", "zh-TW")
LANGUAGE_NAMES = {"en": "English", "zh-CN": "简体中文", "zh-TW": "繁體中文"}

#: The areas whose words make up the UI's vocabulary (engine/web/words/<area>.py).
AREAS = (shell, record, lists, pools, collab)

STRINGS: dict[str, dict[str, str]] = {key: value for area in AREAS for key, value in area.WORDS.items()}


def text(language: str, key: str, **params: object) -> str:
    """The UI string `key` in `language` (English when missing), with `{name}` parameters filled."""
    entry = STRINGS[key]
    template = entry.get(language) or entry["en"]
    return template.format(**params) if params else template


def pick_language(wanted: str | None, fallback: str = "en") -> str:
    """One of LANGUAGES for a stored or requested language tag (zh-Hant → zh-TW, zh → zh-CN)."""
    tag = (wanted or "").strip().lower()
    if tag.startswith("zh"):
        return "zh-TW" if tag in ("zh-tw", "zh-hk", "zh-mo", "zh-hant") or tag.startswith("zh-hant") else "zh-CN"
    if tag.startswith("en"):
        return "en"
    return fallback if fallback in LANGUAGES else "en"
