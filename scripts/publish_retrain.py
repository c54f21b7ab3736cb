#!/usr/bin/env python3
"""Publish a retrain request to the retrain topic (the running local stack's, or any project's).

Usage:
    python scripts/publish_retrain.py --reason "2021 data published" --window 2012-2021
    python scripts/publish_retrain.py --reason "manual" --promotion never --k 4 --n-bootstrap 10

Without --project/--topic it targets the running local stack (``pharmaseg stack status``) and
follows its emulators; with PUBSUB_EMULATOR_HOST unset and --project given it publishes to
real Pub/Sub with Application Default Credentials. Prints the message id.
"""

from __future__ import annotations

import argparse
import os
import sys

from pharmaseg.errors import PharmasegError
from pharmaseg.gcp import resources as cloud_resources
from pharmaseg.retrain.publish import publish_request


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reason", required=True)
    parser.add_argument("--data-uri")
    parser.add_argument("--window")
    parser.add_argument("--k", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--n-init", type=int)
    parser.add_argument("--n-bootstrap", type=int)
    parser.add_argument("--promotion", choices=("auto", "never", "force"))
    parser.add_argument("--requested-by", default=os.environ.get("USER", "publish_retrain.py"))
    parser.add_argument("--project", help="default: the running local stack's project")
    parser.add_argument("--topic", default=cloud_resources.topic_name("retrain"))
    args = parser.parse_args(argv)
    project = args.project
    if project is None:
        from pharmaseg_dev.stack import lifecycle
        from pharmaseg_dev.stack.layout import StackLayout

        status = lifecycle.status(StackLayout.from_env())
        if not status["up"]:
            print("no local stack running: `pharmaseg stack up`, or pass --project", file=sys.stderr)
            return 2
        os.environ.update(status["env"])
        project = status["project"]
    fields = {
        "reason": args.reason,
        "data_uri": args.data_uri,
        "window": args.window,
        "k": args.k,
        "seed": args.seed,
        "n_init": args.n_init,
        "n_bootstrap": args.n_bootstrap,
        "promotion": args.promotion,
        "requested_by": args.requested_by,
    }
    try:
        print(publish_request(project, args.topic, **fields))
    except PharmasegError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
