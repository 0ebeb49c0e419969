"""Record ids: UUIDv7 (time-ordered), generated before the write.

Time order keeps primary-key inserts at the right edge of the index, and generating
ids in Python lets bulk writes use a plain executemany instead of RETURNING.
"""

from __future__ import annotations

import os
import threading
import time

_lock = threading.Lock()
_last = [0, 0]


def new_id() -> str:
    """A UUIDv7 string; monotonic within this process."""
    noise = int.from_bytes(os.urandom(10), "big")
    with _lock:
        millis = time.time_ns() // 1_000_000
        if millis <= _last[0]:
            millis, counter = _last[0], _last[1] + 1
        else:
            counter = noise >> 70  # 10 random bits: a random start, room to count up within a millisecond
        _last[0], _last[1] = millis, counter
    rand = noise & ((1 << 62) - 1)
    value = (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (counter & 0xFFF) << 64 | 0b10 << 62 | rand
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def canonical_id(value: object) -> str:
    """A record id in canonical form (lower case, dashed); anything that is not a UUID becomes
    the nil UUID, which matches no record."""
    if not isinstance(value, str):
        return "00000000-0000-0000-0000-000000000000"
    text = value.strip().lower().replace("-", "")
    if len(text) != 32 or any(ch not in "0123456789abcdef" for ch in text):
        return "00000000-0000-0000-0000-000000000000"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"

