"""The op build stage: clean out-of-tree compiles of CUDA/C++ ops, the content-addressed store,
fixups, preflight checks and installing the wheels.
"""
