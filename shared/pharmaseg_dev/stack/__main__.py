"""``python -m pharmaseg_dev.stack up|down|status|logs``."""

import sys

from pharmaseg_dev.stack.commands import main

sys.exit(main())
