"""Python face of the compiled op (imports ``wholepkg._C`` on first use)."""


def shift_(x, value):
    """Add ``value`` to every element of ``x`` in place (CPU or CUDA)."""
    from wholepkg import _C

    return _C.shift_(x, float(value))
