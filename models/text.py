"""Values from the data inside messages: bounded in length, one line each.

A value a file supplies (an id, a category, a date that does not parse) can be of any size and hold
line breaks. In a log line or an error message it is cut to ``MAX_CHARS`` characters, followed by how
long it was, and control characters are shown escaped, so that no value can make a message huge or
forge another log line.
"""

from __future__ import annotations

import math
import re

MAX_CHARS = 80
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clip(value: object, limit: int = MAX_CHARS, quote: bool = False) -> str:
    """``str(value)`` (``repr``-quoted with ``quote``) in at most ``limit`` characters of the value, plus
    ``... (N characters)`` when it was longer; control characters escaped (``\\n``, ``\\x00``)."""
    if limit < 1:
        raise ValueError(f"limit must be a positive number of characters. Got {limit} instead")
    text = str(value)
    shown = repr(text[:limit]) if quote else _CONTROL.sub(lambda m: repr(m.group())[1:-1], text[:limit])
    return shown if len(text) <= limit else f"{shown}... ({len(text):,} characters)"


def signed(value: float, digits: int = 4) -> str:
    """``value`` with its sign and ``digits`` decimals ('+0.0023'); a value that is not zero but would
    round to zero keeps decimals up to its first significant digit ('+0.00004'), so that a bound that
    decides a rule (above zero or not) never reads as zero."""
    text = f"{value:+.{digits}f}"
    if value == 0 or float(text) != 0:
        return text
    return f"{value:+.{max(digits, -math.floor(math.log10(abs(value))))}f}"
