"""Command-line value helpers for bundle configs.

``python -m monai.bundle run ... --flag false`` hands the config the *string* ``"false"`` (python-fire only turns
``True``/``False``/``None`` into Python values), and a bare ``"false"`` is truthy. Bundle configs therefore read
every boolean option through :func:`as_bool`, which accepts the usual spellings in any case and rejects typos.
"""

from __future__ import annotations

from typing import Any, Literal, overload

import numpy as np

__all__ = ["TRUE_STRINGS", "FALSE_STRINGS", "NONE_STRINGS", "as_bool"]

TRUE_STRINGS: tuple[str, ...] = ("true", "yes", "on", "1")
FALSE_STRINGS: tuple[str, ...] = ("false", "no", "off", "0")
NONE_STRINGS: tuple[str, ...] = ("none", "null")


@overload
def as_bool(value: Any, name: str | None = None, allow_none: Literal[False] = False) -> bool: ...


@overload
def as_bool(value: Any, name: str | None = None, allow_none: bool = ...) -> bool | None: ...


def as_bool(value: Any, name: str | None = None, allow_none: bool = False) -> bool | None:
    """Interpret a boolean option given in a config or on the command line.

    Args:
        value: a ``bool``, a NumPy bool, the integers ``0``/``1``, or a string spelling ``true/false``,
            ``yes/no``, ``on/off`` or ``1/0`` (case and surrounding spaces are ignored).
        name: the option's key, used in the error message (e.g. ``"skip_connections"``).
        allow_none: when ``True``, ``None`` (or the strings ``"none"``/``"null"``) is returned as ``None``
            ("not set"); otherwise it is an error.

    Returns:
        ``True`` or ``False`` (``None`` only with ``allow_none``).

    Raises:
        ValueError: for any other value (a typo such as ``"flase"``, ``"maybe"``, ``2``, ``0.5``, ``None``), naming
            the key and the accepted spellings.

    Example:
        >>> as_bool("false"), as_bool(" TRUE "), as_bool("Off"), as_bool(1), as_bool(True)
        (False, True, False, True, True)
        >>> as_bool(None, "guidance", allow_none=True) is None
        True
        >>> as_bool("flase", "skip_connections")
        Traceback (most recent call last):
        ...
        ValueError: skip_connections: expected a boolean (true/false, yes/no, on/off or 1/0, any case), got 'flase'.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if value is None:
        if allow_none:
            return None
    elif isinstance(value, (int, np.integer)):
        if value in (0, 1):
            return bool(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE_STRINGS:
            return True
        if text in FALSE_STRINGS:
            return False
        if allow_none and text in NONE_STRINGS:
            return None
    accepted = "true/false, yes/no, on/off or 1/0, any case" + (", or none" if allow_none else "")
    key = f"{name}: " if name else ""
    raise ValueError(f"{key}expected a boolean ({accepted}), got {value!r}.")
