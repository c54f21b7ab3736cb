"""What a batch run may be configured with (functions/score_batch/main.py reads it from the environment)."""

from __future__ import annotations

from dataclasses import dataclass

from pharmaseg.batch.scoring import DEFAULT_BORDERLINE_CONFIDENCE


@dataclass(frozen=True)
class BatchSettings:
    prefix: str = "incoming/"
    results_prefix: str = "results/"
    staging_prefix: str = "staging/"
    sql_threshold_bytes: int = 100 * 1024 * 1024
    max_panel_bytes: int = 64 * 1024 * 1024
    block_size: int = 4 * 1024 * 1024
    io_chunk_bytes: int = 8 * 1024 * 1024
    raw_limit: int = 1024
    window: str | None = None
    borderline_confidence: float = DEFAULT_BORDERLINE_CONFIDENCE
