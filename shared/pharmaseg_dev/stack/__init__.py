"""The local Google Cloud stack: emulators, resources and functions on loopback ports.

``pharmaseg stack up|down|status|logs`` drives it (see ``docs/local-stack.md``). Nothing in the
Cloud Functions imports this package; it exists for developers, demos and integration tests.
"""

from pharmaseg_dev.stack.layout import StackError, StackLayout

__all__ = ["StackError", "StackLayout"]
