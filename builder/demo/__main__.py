"""``python -m builder.demo`` (``make demo``): every stage offline, against a local channel."""

import sys

from builder.demo.run import main

sys.exit(main(sys.argv[1:]))
