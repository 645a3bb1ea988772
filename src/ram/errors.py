"""The one exception type users see: a one-line message naming the problem and the fix."""
from __future__ import annotations

import functools
import sys


class RamError(Exception):
    """A problem with the user's input (files, flags, checkpoints), reported in one line.

    The command-line entry points catch it and print ``error: <message>`` without a
    traceback; library users can catch it like any exception.
    """


def friendly(main):
    """Turn RamError into one line on stderr and exit status 2, never a traceback: the
    wrapper of every command-line entry point."""
    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            return main(argv)
        except RamError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2)
    return wrapper
