"""JSON that strict parsers accept: NaN and infinity, which ``json.dumps`` writes as bare ``NaN`` /
``Infinity`` (not JSON), become ``null``."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, +-inf) inside dicts, lists and tuples replaced by None;
    numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps_strict(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`finite_or_none` (``value``): valid JSON, ``null`` where a number is undefined."""
    return json.dumps(finite_or_none(value), allow_nan=False, **kwargs)


def loads_untrusted(text: str | bytes) -> Any:
    """``json.loads`` of text from a file a user can change: nesting too deep for the parser (its
    RecursionError) is a ValueError, like any other malformed JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
