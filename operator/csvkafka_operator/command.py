"""The `csvkafka operator` subcommand's flags. Importing the operator itself (kopf, the Kubernetes
client) waits until the command runs, so that `csvkafka run` starts without them."""

from __future__ import annotations

import argparse
from typing import Any

# kopf.LogFormat's members, lower-cased (tests/unit/test_operator_cli.py keeps them in step).
LOG_FORMATS = ("plain", "full", "json")


def register(subparsers: Any) -> None:
    command = subparsers.add_parser(
        "operator", help="run the operator that turns CsvKafkaImport resources into Jobs",
        description="Reconciles CsvKafkaImport resources into Jobs and mirrors their progress into status. "
                    "Settings come from CSVKAFKA_* environment variables (see csvkafka_operator/settings.py).")
    command.add_argument("-n", "--namespace", action="append", dest="namespaces", metavar="PATTERN",
                         help="watch only these namespaces (kopf globs, `!` excludes; repeatable) "
                              "[env CSVKAFKA_NAMESPACES; default: all]")
    command.add_argument("--liveness", default="http://0.0.0.0:8080/healthz", metavar="URL",
                         help="serve the liveness probe here (default %(default)s)")
    command.add_argument("--log-format", choices=LOG_FORMATS, default="full")
    command.add_argument("-v", "--verbose", action="store_true")
    command.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from csvkafka_operator import main

    return main.run(args)
