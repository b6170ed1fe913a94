"""The `csvkafka` command: `run` and `checkpoint` (the worker's), and `operator`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import csvkafka_worker.cli
from csvkafka_operator import command as operator_command


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="csvkafka",
                                     description="Bulk-load CSV from Amazon S3 into Apache Kafka, the Kubernetes way.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    csvkafka_worker.cli.register(commands)
    operator_command.register(commands)
    return csvkafka_worker.cli.dispatch(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
