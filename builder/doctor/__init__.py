"""``envbuild doctor``: what this host, the matrix and a spec say about each other, as checks
with a status and a fix.
"""
