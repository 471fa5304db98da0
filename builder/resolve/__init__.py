"""spec + target -> Resolution: the decisions (torch, CUDA, toolchain, arch list, pins), each
explained.
"""
