"""Cloud Run list prices the benchmarks turn measured CPU time into dollars with.

Cloud Run functions (2nd gen) are billed as Cloud Run services with request-based billing (CPU
allocated only while a request is handled), Tier 1 regions, beyond the free tier; as published
on https://cloud.google.com/run/pricing and read on PRICES_READ. Prices change: rerun the
benchmark after updating them.
"""

PRICES_READ = "2026-12-01"
VCPU_SECOND = 0.000024  # USD per vCPU-second
GIB_SECOND = 0.0000025  # USD per GiB-second
PER_MILLION_REQUESTS = 0.40  # USD per million requests (or events)


def per_million(seconds_per_item: float, vcpu: float, memory_gib: float, requests: float = 1.0) -> float:
    """USD for a million items that each hold an instance of ``vcpu`` and ``memory_gib`` for ``seconds_per_item``."""
    compute = seconds_per_item * (vcpu * VCPU_SECOND + memory_gib * GIB_SECOND)
    return 1e6 * compute + requests * PER_MILLION_REQUESTS
