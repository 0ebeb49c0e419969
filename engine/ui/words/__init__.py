"""The UI's words, one module per area of the UI (each a WORDS dict: id → {language: text}).

Areas are listed in engine.web.strings.AREAS; an id may appear in one area only (a test checks).
"""
