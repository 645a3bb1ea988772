"""The one exception type users see: a one-line message naming the problem and the fix."""


class RamError(Exception):
    """A problem with the user's input (files, flags, checkpoints), reported in one line.

    The command-line entry points catch it and print ``error: <message>`` without a
    traceback; library users can catch it like any exception.
    """
