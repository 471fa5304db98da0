"""A test package whose compiled part is ``wholepkg._C`` (see setup.py)."""

from wholepkg.ops.shift import shift_

__all__ = ["shift_"]
