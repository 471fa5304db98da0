"""``envbuild env``: resolve, lock, install, build and sanity as one run, each stage skipped
when up to date.
"""
