"""Benchmark floor: a function that parses the JSON body and answers, nothing else."""

import functions_framework


@functions_framework.http
def noop(request):
    request.get_json(silent=True)
    return {"ok": True}
