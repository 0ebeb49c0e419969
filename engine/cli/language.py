"""The language of the command line's messages and labels: --language, else $METACRM_LANGUAGE,
else the POSIX locale ($LC_ALL, $LC_MESSAGES, $LANG: `zh_TW.UTF-8` -> zh-TW), else English."""

from __future__ import annotations

from typing import Mapping

from metacrm.engine import i18n

ENV_VAR = "METACRM_LANGUAGE"
LOCALE_VARS = ("LC_ALL", "LC_MESSAGES", "LANG")


def cli_language(given: str | None, environ: Mapping[str, str]) -> str:
    """The first of --language, $METACRM_LANGUAGE and the locale that names a supported language."""
    candidates = [given, environ.get(ENV_VAR)]
    candidates += [environ.get(var, "").split(".")[0].split("@")[0] for var in LOCALE_VARS]
    for candidate in candidates:
        if candidate and candidate not in ("C", "POSIX"):
            language = i18n.supported(candidate)
            if language:
                return language
    return i18n.DEFAULT
