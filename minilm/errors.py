"""The one exception type a user should ever see from minilm.

A MinilmError carries a single line that says what went wrong and what to do about it.
The CLI prints that line and exits non-zero; it never shows a traceback from inside NumPy.
"""


class MinilmError(Exception):
    """A problem with the user's input (a flag, a file, a token id), explained in one line."""


class NotFinite(MinilmError):
    """A model's numbers became NaN or infinite: a run that diverged (minilm.train stops it, keeping the last good
    checkpoint)."""
