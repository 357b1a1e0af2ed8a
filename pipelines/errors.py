"""The one base class of the errors a user can fix.

The ``leadtier`` command prints any :class:`UserError` as a one-line ``error: ...`` message without
a traceback and exits with status 2. Each stage raises its own subclass (``ConfigError``,
``InputError``, ...), so a caller can still catch the narrow kind.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix: a config, an input file, too little data, a model URI, a busy port."""
