"""Dev-only tooling, never in a function's archive: the local stack, the CLI, the drift simulator."""
