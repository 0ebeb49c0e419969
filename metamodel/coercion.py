"""Turn input (JSON values, form strings, CSV cells) into the typed value of a field.

One function per type family; every failure is a CoercionError with a code and a
message an end user understands. Blank input ("" or None) is None for every type.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timezone
from decimal import Context, Decimal, InvalidOperation
from typing import Any, Callable
from urllib.parse import urlparse

from metacrm.metamodel.errors import MetacrmError
from metacrm.metamodel.model import FieldDef

UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")  # a plain number, as JSON or CSV write it
TRUE_WORDS = {"true", "yes", "y", "1", "on", "是"}
FALSE_WORDS = {"false", "no", "n", "0", "off", "否"}
MAX_TEXT = 1_000_000
MAX_EMAIL = 254  # the longest address SMTP can carry (RFC 5321 path limit)
MAX_PHONE = 32
MAX_URL = 8_192
MAX_UUID = 36
MAX_INTEGER_DIGITS = 19  # a signed 64-bit integer has at most 19 digits
PHONE_CHARS = frozenset("0123456789 ()-.")


class CoercionError(MetacrmError, ValueError):
    """A value that does not fit a field: `code` for programs, `message` for people."""

    def __init__(self, code: str, message: str, **params: Any):
        super().__init__(message)
        self.code, self.message, self.params = code, message, params


def json_number(text: str) -> Decimal:
    """A JSON number with a fraction or exponent, exactly (json.loads(parse_float=...)): never
    through a float, never an exception. Exponents past what Decimal holds become the largest
    or smallest magnitude it holds, which every decimal field refuses as out of range or too
    precise (zero stays zero)."""
    try:
        return Decimal(text)
    except InvalidOperation:
        mantissa, _, exponent = text.lower().partition("e")
        sign = "-" if mantissa.startswith("-") else ""
        if not any(ch in "123456789" for ch in mantissa):
            return Decimal(sign + "0")
        return Decimal(f"{sign}1E{'-' if exponent.startswith('-') else '+'}999999999999999999")


def json_integer(text: str) -> int | Decimal:
    """A JSON integer (json.loads(parse_int=...)); past Python's int-from-text limit, a Decimal."""
    return int(text) if len(text) <= 4000 else Decimal(text)


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "") or value == []


def coerce(field: FieldDef, value: Any) -> Any:
    """The typed value of `value` for `field`, or None when blank."""
    if is_blank(value):
        return None
    return COERCERS[field.storage_type](field, value)


def _text(field: FieldDef, value: Any) -> str:
    if not isinstance(value, str):
        raise CoercionError("invalid_type", "must be text")
    if len(value) > MAX_TEXT:
        raise CoercionError("too_long", f"must be at most {MAX_TEXT} characters")
    if "\x00" in value:
        raise CoercionError("invalid_text", "must not contain NUL characters")
    if not is_unicode(value):
        raise CoercionError("invalid_text", "must be valid Unicode text (it contains a lone surrogate)")
    return value


def is_unicode(text: str) -> bool:
    """False when `text` holds a lone UTF-16 surrogate (JSON "\\ud800"), which no database,
    encoder or regex engine accepts."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _email(field: FieldDef, value: Any) -> str:
    value = _text(field, value).strip()
    if not is_email(value):
        raise CoercionError("invalid_email", "is not a valid email address")
    return value


def is_email(text: str) -> bool:
    """local@domain.tld: one @, no spaces, a dot inside the domain. Plain string checks, so the
    time is linear in the length (a backtracking regex was quadratic on long input)."""
    if len(text) > MAX_EMAIL or any(c.isspace() for c in text):
        return False
    local, at, domain = text.partition("@")
    return bool(local and at and "@" not in domain and "." in domain[1:-1])


def _phone(field: FieldDef, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**MAX_PHONE:
        value = str(value)
    value = _text(field, value).strip()
    if not is_phone(value):
        raise CoercionError("invalid_phone", "is not a valid phone number")
    return value


def is_phone(text: str) -> bool:
    """An optional +, then 3 to 32 digits, spaces, ()-. with at least 3 digits."""
    body = text[1:] if text.startswith("+") else text
    return 3 <= len(body) <= MAX_PHONE and all(c in PHONE_CHARS for c in body) and \
        sum(c.isdigit() for c in body) >= 3


def _url(field: FieldDef, value: Any) -> str:
    value = _text(field, value).strip()
    if len(value) > MAX_URL:
        raise CoercionError("too_long", f"must be at most {MAX_URL} characters")
    try:
        parsed = urlparse(value)
    except ValueError:  # e.g. "http://[::1" (an unclosed IPv6 address)
        raise CoercionError("invalid_url", "must be an http(s) URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.netloc or any(c.isspace() for c in value):
        raise CoercionError("invalid_url", "must be an http(s) URL")
    return value


def _integer(field: FieldDef, value: Any) -> int:
    if isinstance(value, bool):
        raise CoercionError("invalid_type", "must be a whole number")
    if isinstance(value, int):
        if abs(value) > 2**63 - 1:
            raise CoercionError("out_of_range", "is too large")
        return value
    if isinstance(value, str) and len(value) > 100:  # no 64-bit integer is written that long
        raise CoercionError("out_of_range", "is too large")
    try:
        number = Decimal(value.strip().replace(",", "") if isinstance(value, str) else str(value))
    except (InvalidOperation, ValueError, TypeError):
        raise CoercionError("invalid_type", "must be a whole number") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise CoercionError("invalid_type", "must be a whole number")
    if number.adjusted() >= MAX_INTEGER_DIGITS:  # before int(): 1e999999999 would take forever
        raise CoercionError("out_of_range", "is too large")
    result = int(number)
    if abs(result) > 2**63 - 1:
        raise CoercionError("out_of_range", "is too large")
    return result


def _decimal(field: FieldDef, value: Any) -> Decimal:
    """An exact decimal with exactly `scale` places. Checked on the digits themselves, never
    through a rounding context: "1e-999999999999999999" is too precise, not zero."""
    if isinstance(value, bool):
        raise CoercionError("invalid_type", "must be a number")
    try:
        if isinstance(value, str):
            value = value.strip().replace(",", "").rstrip("%").strip()
        number = value if isinstance(value, (Decimal, int, str)) else Decimal(str(value))
        number = json_number(number) if isinstance(number, str) and NUMBER.match(number) else Decimal(number)
    except (InvalidOperation, ValueError, TypeError):
        raise CoercionError("invalid_type", "must be a number") from None
    if not number.is_finite():
        raise CoercionError("invalid_type", "must be a finite number")
    sign, digits, exponent = number.as_tuple()
    significant = len(digits)
    while significant and digits[significant - 1] == 0:  # "10.500" is fine at scale 2
        significant -= 1
    if not significant:
        return Decimal((0, (0,), -field.scale))  # zero, never -0
    exponent += len(digits) - significant
    if -exponent > field.scale:
        raise CoercionError("too_many_decimals", f"must have at most {field.scale} decimal places", scale=field.scale)
    limit = field.precision - field.scale
    if significant + exponent > limit:
        raise CoercionError("out_of_range", f"must have at most {limit} digits before the decimal point")
    return Decimal((sign, digits[:significant] + (0,) * (exponent + field.scale), -field.scale))


def round_decimal(field: FieldDef, value: Any, rounding: str) -> Decimal:
    """A computed number (a formula's result) rounded to the field's scale; CoercionError if
    it has more digits than the precision, rather than a database overflow later."""
    number = value if isinstance(value, Decimal) else Decimal(value)
    if not number.is_finite():
        raise CoercionError("invalid_type", "must be a finite number")
    limit = field.precision - field.scale
    if number and number.adjusted() >= limit:
        raise CoercionError("out_of_range", f"must have at most {limit} digits before the decimal point")
    context = Context(prec=field.precision + 2, Emin=-999999, Emax=999999)
    return _decimal(field, number.quantize(Decimal(1).scaleb(-field.scale), rounding=rounding, context=context))


def _boolean(field: FieldDef, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise CoercionError("invalid_type", "must be true or false")


def _date(field: FieldDef, value: Any) -> date:
    if isinstance(value, datetime):
        raise CoercionError("invalid_type", "must be a date (YYYY-MM-DD), not a date and time")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise CoercionError("invalid_date", "must be a date (YYYY-MM-DD)")


def _datetime(field: FieldDef, value: Any) -> datetime:
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise CoercionError("invalid_datetime", "must be a date and time (ISO 8601)") from None
    if isinstance(value, datetime):
        try:
            return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        except OverflowError:
            raise CoercionError("invalid_datetime", "is out of the supported range of dates") from None
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    raise CoercionError("invalid_datetime", "must be a date and time (ISO 8601)")


def _option(field: FieldDef, value: Any) -> str:
    if not isinstance(value, str):
        raise CoercionError("invalid_type", "must be one of the listed values")
    text = value.strip()
    for option in field.options:
        if text == option.value:
            return option.value
    for option in field.options:  # forms and CSV files often carry the label
        if text in option.labels.values():
            return option.value
    allowed = ", ".join(field.option_values)
    raise CoercionError("invalid_choice", f"{value!r} is not one of: {allowed}", allowed=allowed)


def _options(field: FieldDef, value: Any) -> list[str]:
    if isinstance(value, str):
        value = [v for v in value.split(";")]
    if not isinstance(value, (list, tuple)):
        raise CoercionError("invalid_type", "must be a list of values")
    chosen = {_option(field, v) for v in value if not is_blank(v)}
    return [v for v in field.option_values if v in chosen]


def _reference(field: FieldDef, value: Any) -> str:
    if not isinstance(value, str) or len(value.strip()) > MAX_UUID or not UUID.match(value.strip()):
        raise CoercionError("invalid_reference", "must be the id of a record")
    text = value.strip().lower().replace("-", "")
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _json(field: FieldDef, value: Any) -> Any:
    value = _plain_numbers(value)
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")  # NaN and infinities are not JSON
    except (TypeError, ValueError, RecursionError):  # UnicodeEncodeError (a lone surrogate) is a ValueError
        raise CoercionError("invalid_type", "must be JSON data") from None
    except RecursionError:
        raise CoercionError("invalid_type", "is nested too deeply") from None
    return value


def _plain_numbers(value: Any, depth: int = 0) -> Any:
    """JSON data with exactly parsed numbers (Decimals) turned into plain JSON numbers."""
    if isinstance(value, Decimal):
        return int(value) if value.is_finite() and value == value.to_integral_value() and value.adjusted() < 19 \
            else float(value)
    if depth > 64:
        return value
    if isinstance(value, dict):
        return {k: _plain_numbers(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_numbers(v, depth + 1) for v in value]
    return value


COERCERS: dict[str, Callable[[FieldDef, Any], Any]] = {
    "text": _text,
    "long_text": _text,
    "auto_number": _text,
    "email": _email,
    "phone": _phone,
    "url": _url,
    "integer": _integer,
    "decimal": _decimal,
    "currency": _decimal,
    "percent": _decimal,
    "boolean": _boolean,
    "date": _date,
    "datetime": _datetime,
    "picklist": _option,
    "multi_picklist": _options,
    "lookup": _reference,
    "master_detail": _reference,
    "user": _reference,
    "json": _json,
}
