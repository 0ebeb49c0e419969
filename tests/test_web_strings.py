"""Every word of the UI exists in English, Simplified and Traditional Chinese, once."""

from __future__ import annotations

import re
import string

from metacrm.engine.ui import strings


def test_every_ui_word_is_translated_with_the_same_parameters():
    english_sentence = re.compile(r"[A-Za-z]{2,}(\s+[A-Za-z]{2,}){2,}")
    for key, entry in strings.STRINGS.items():
        assert set(entry) == set(strings.LANGUAGES), key
        wanted = {name for _, name, _, _ in string.Formatter().parse(entry["en"]) if name}
        for language in ("zh-CN", "zh-TW"):
            found = {name for _, name, _, _ in string.Formatter().parse(entry[language]) if name}
            assert found == wanted, (key, language)
            assert not english_sentence.search(entry[language]), (key, language, entry[language])


def test_no_word_is_defined_in_two_areas():
    seen: dict[str, str] = {}
    for area in strings.AREAS:
        for key in area.WORDS:
            assert key not in seen, f"{key} is in {seen[key]} and {area.__name__}"
            seen[key] = area.__name__
