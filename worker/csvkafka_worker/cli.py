"""The worker's subcommands: `csvkafka run` and `csvkafka checkpoint show|set|delete`.

`register` adds them to the `csvkafka` command (built in csvkafka_operator.cli, which adds
`operator`); `main` runs them alone. Every failure ends in one line on stderr naming the thing and
the fix, and in the exit code of exit_codes.py.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from csvkafka_worker.checkpoint import Checkpoint, State, shard_job_id
from csvkafka_worker.errors import ConfigError, Reason, StoppedWhileWaiting, WorkerError
from csvkafka_worker.exit_codes import ExitCode
from csvkafka_worker.options import add_flags, parse
from csvkafka_worker.progress import log_line
from csvkafka_worker.seekpoints import described


def register(subparsers: Any) -> None:
    run = subparsers.add_parser("run", help="import one CSV object from S3 into Kafka",
                                description="Streams s3://bucket/key into a Kafka topic with DynamoDB checkpoints.")
    add_flags(run)
    run.set_defaults(handler=run_command, exit_at_once=True)

    checkpoint = subparsers.add_parser("checkpoint", help="show, set or delete an import's checkpoint")
    checkpoint.add_argument("action", choices=("show", "set", "delete"))
    checkpoint.add_argument("--table", default=os.environ.get("DYNAMODB_TABLE"), help="DynamoDB table [DYNAMODB_TABLE]")
    checkpoint.add_argument("--job-id", default=os.environ.get("JOB_ID"), help="the import's job id [JOB_ID]")
    checkpoint.add_argument("--shard", default="0/1", help="INDEX/COUNT of a sharded import (default 0/1)")
    checkpoint.add_argument("--row", type=int, help="with set: the next run starts at row ROW+1")
    checkpoint.set_defaults(handler=checkpoint_command)


def worker_identity() -> str:
    pod = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{pod}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def run_command(args: argparse.Namespace) -> int:
    # Every block allocates a few containers; at the default thresholds the cyclic collector runs
    # often for nothing (blocks hold no cycles): collect rarely, and freeze what start-up made.
    gc.set_threshold(200_000, 50, 1000)
    from csvkafka_worker.importer import Importer
    from csvkafka_worker.source import s3_client
    from csvkafka_worker.store import dynamodb_client

    try:
        spec, run_options = parse(args, os.environ)
    except ConfigError as error:
        return _fail(error, "unknown")
    stop = threading.Event()

    def on_sigterm(signum: int, _frame: Any) -> None:
        stop.set()
        log_line(sys.stderr, "stopping", signal=signal.Signals(signum).name,
                 within_seconds=run_options.shutdown_timeout)

    gc.freeze()
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, on_sigterm)
    kind: Any = Importer
    if not spec.source.single_object:
        from csvkafka_worker.objects import ObjectsRun

        kind = ObjectsRun
    try:
        importer = kind(spec, run_options, s3=s3_client(spec.retry.s3_seconds),
                        dynamodb=dynamodb_client(spec.retry.dynamodb_seconds), owner=worker_identity(), stop=stop)
    except WorkerError as error:
        return _fail(error, spec.job_id)
    try:
        outcome = importer.run()
    except StoppedWhileWaiting as stopped:
        log_line(sys.stderr, "stopped", job=importer.job_id, message=str(stopped))
        return run_options.interrupted_exit_code
    except WorkerError as error:
        importer.close()
        return _fail(error, importer.job_id)
    finally:
        importer.close()
    if outcome.state is State.INTERRUPTED:
        return run_options.interrupted_exit_code
    return ExitCode.OK


def _fail(error: WorkerError, job_id: str) -> int:
    if error.reason is Reason.INTERNAL_ERROR and error.__cause__ is not None:
        traceback.print_exception(error.__cause__, file=sys.stderr)
    log_line(sys.stderr, "error", level="error", job=job_id, reason=error.reason, exit_code=int(error.exit_code),
             message=str(error))
    print(f"csvkafka: error: {error}", file=sys.stderr)
    return int(error.exit_code)


def checkpoint_command(args: argparse.Namespace) -> int:
    from csvkafka_worker.retry import Backoff, Retrier, Service
    from csvkafka_worker.spec import RetrySpec
    from csvkafka_worker.store import CheckpointStore, dynamodb_client

    if not args.table or not args.job_id:
        return _fail(ConfigError("checkpoint needs --table (DYNAMODB_TABLE) and --job-id (JOB_ID)"), "unknown")
    index, _, count = args.shard.partition("/")
    job_id = shard_job_id(args.job_id, int(index), int(count or 1))
    budget = RetrySpec().dynamodb_seconds
    store = CheckpointStore(dynamodb_client(budget), args.table, job_id, owner=worker_identity(), lease_seconds=0,
                            retrier=Retrier(Service.DYNAMODB, Backoff(budget)))
    try:
        if args.action == "show":
            current = store.load()
            if current is None:
                print(f"no checkpoint for job {job_id!r} in {args.table}: the next run starts at row 1")
                return ExitCode.OK
            print(orjson.dumps(_describe(current), option=orjson.OPT_INDENT_2).decode())
        elif args.action == "set":
            if args.row is None or args.row < 0:
                return _fail(ConfigError("checkpoint set needs --row N (N >= 0): the next run starts at row N+1"),
                             job_id)
            # Without a byte offset the next run reads from the first data row and skips N rows.
            store.put_unguarded(Checkpoint(job_id=job_id, last_line=args.row, total_sent=args.row,
                                           timestamp=int(time.time()), state=State.INTERRUPTED,
                                           message=f"set by hand to resume at row {args.row + 1}"))
            print(f"checkpoint {job_id!r}: the next run starts at row {args.row + 1}")
        else:
            store.delete()
            print(f"checkpoint {job_id!r} deleted: the next run starts at row 1")
    except WorkerError as error:
        return _fail(error, job_id)
    return ExitCode.OK


def _describe(cp: Checkpoint) -> dict[str, Any]:
    out = {k: v for k, v in cp.__dict__.items() if v is not None}
    out["state"] = cp.state.value
    out["next_row"] = cp.last_line + 1
    if cp.seek_point:
        out["seek_point"] = described(cp.seek_point)
    return out


def dispatch(args: argparse.Namespace) -> int:
    """Runs the chosen command. After `run` the process ends at once: the producer is closed and the
    checkpoint written, so tearing down the interpreter's modules would only add a tenth of a second
    to every pod."""
    code = int(args.handler(args))
    if getattr(args, "exit_at_once", False):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="csvkafka")
    register(parser.add_subparsers(dest="command", required=True))
    return dispatch(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
