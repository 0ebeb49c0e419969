"""Every message a user sees, in their language: the supported languages, `Accept-Language`
negotiation, and the message catalogues (gettext `.po`, read with Babel).

    from metacrm.engine import i18n
    i18n.LANGUAGES                                      # ("en", "zh-CN", "zh-TW")
    i18n.negotiate("fr;q=0.1, zh-CN;q=0.9", "en")       # "zh-CN"
    i18n.translate("unknown object '{name}'", "zh-TW", name="deal")
    i18n.localize("unknown object 'deal'", "zh-TW")     # the same, from the English text

The module functions use the shipped catalogue; a Runtime's `catalogue` adds its plugins'.
This package imports nothing else of the engine: every layer may use it.
"""

from __future__ import annotations

from typing import Any

from metacrm.engine.i18n.catalogue import Catalogue, shipped, with_directories
from metacrm.engine.i18n.negotiation import DEFAULT, LANGUAGES, negotiate, supported

__all__ = ["Catalogue", "DEFAULT", "LANGUAGES", "localize", "negotiate", "shipped", "supported", "translate",
           "with_directories"]


def translate(msgid: str, language: str | None, **params: Any) -> str:
    """Message `msgid` (its English text, with `{name}` placeholders) in `language`, with `params`."""
    return shipped().translate(msgid, language, **params)


def localize(text: str, language: str | None) -> str:
    """An English message (as raised) in `language`; unchanged when the catalogue has no entry for it."""
    return shipped().localize(text, language)
