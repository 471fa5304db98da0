"""Op builds: toolchain preflight, clean out-of-tree compiles, the content-addressed store,
source fixups and failure diagnosis.  Entry point: :func:`builder.build.ops.build_op`."""
