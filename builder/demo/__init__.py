"""The op-test sandbox for every stage offline: a local conda channel built from this machine,
and the demo that runs every stage against it (``make demo``, the tests, the benches).
"""
