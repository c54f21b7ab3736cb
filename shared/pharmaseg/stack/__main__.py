"""``python -m pharmaseg.stack up|down|status|logs``."""

import sys

from pharmaseg.stack.commands import main

sys.exit(main())
