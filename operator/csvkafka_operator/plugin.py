"""`kubectl csvimport`: an import's progress per shard and per object, and its lifecycle as one-word commands.

Every command edits the resource's spec the way a person would (restart, suspend), so the operator
does the work and `kubectl get -o yaml` shows what was asked for. Under GitOps, make the same
change in the repository instead, or the next sync reverts it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from csvkafka_operator import objects
from csvkafka_operator.checkpoints import Checkpoints
from csvkafka_operator.k8s import Json, Kube, connect, kubeconfig_namespace
from csvkafka_operator.models import CsvKafkaImport, ImportStatus, InvalidResource
from csvkafka_worker.errors import WorkerError
from csvkafka_worker.plan import ObjectEntry
from csvkafka_worker.planstore import PlanState, PlanStore
from csvkafka_worker.retry import Backoff, Retrier, Service
from csvkafka_worker.spec import RerunMode, SourceSpec

# The plan's entries of an import, read from its checkpoint table with a DynamoDB client.
PlanReader = Callable[[Any, CsvKafkaImport], Iterable[ObjectEntry]]
# A command line waits this long at most for DynamoDB (throttling, no answer).
DYNAMODB_SECONDS = 20.0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    namespace = args.namespace or kubeconfig_namespace(args.kubeconfig, args.context)
    kube = Kube(connect(args.kubeconfig, args.context))
    try:
        return int(args.action(kube, namespace, args))
    except ApiException as error:
        print(f"kubectl csvimport: {error.status} {error.reason}: {_api_message(error)}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubectl csvimport", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _connection_flags(parser, default=None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, action: Any, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("name", help="the CsvKafkaImport")
        # As with kubectl, the flags may also follow the command; unset there, they keep the value
        # given before it.
        _connection_flags(sub, default=argparse.SUPPRESS)
        sub.set_defaults(action=action)
        return sub

    command("status", show_status, "progress, rate and ETA, per shard, and the conditions")
    command("objects", show_objects, "every object of an import of many objects: its state, rows sent, bad rows, "
                                     "size, progress and why it failed. Reads the plan and the checkpoints from the "
                                     "DynamoDB table spec.checkpoint.table with your AWS credentials (AWS_PROFILE, "
                                     "AWS_REGION, ...), which need dynamodb:GetItem and dynamodb:BatchGetItem on it")
    restart = command("restart", restart_import, "stop the current run and start a new one, from the checkpoint "
                                                 "or from a given row")
    restart.add_argument("--from-row", type=int, metavar="N",
                         help="start at data row N (1-based, header excluded); default: continue from the checkpoint")
    command("reset", reset_import, "delete the checkpoints and import everything again from the first row (with "
                                   "many objects: a rerun of all of them)")
    rerun = command("rerun", rerun_import, "run an import of many objects again: its source is listed again and the "
                                           "new run imports the objects not completed yet, including new ones")
    rerun.add_argument("--mode", choices=[mode.value for mode in RerunMode], default=RerunMode.NEW.value,
                       help="new: objects not completed yet; changed: also those whose ETag changed since; all: "
                            "every object again (default: new)")
    command("suspend", suspend_import, "stop the workers (they checkpoint first)")
    command("resume", resume_import, "let a suspended import continue from its checkpoint")
    return parser


def _connection_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("-n", "--namespace", default=default,
                        help="the import's namespace (default: the kubeconfig context's)")
    parser.add_argument("--kubeconfig", default=default, help="kubeconfig file (default: KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--context", default=default, help="kubeconfig context")


# -- commands --------------------------------------------------------------------------------------


def show_status(kube: Kube, namespace: str, args: argparse.Namespace) -> int:
    body = kube.get_import(namespace, args.name)
    if body is None:
        return _not_found(namespace, args.name)
    print(render_status(body))
    return 0


def show_objects(kube: Kube, namespace: str, args: argparse.Namespace, dynamodb: Any = None,
                 read_plan: PlanReader | None = None) -> int:
    body = kube.get_import(namespace, args.name)
    if body is None:
        return _not_found(namespace, args.name)
    try:
        resource = CsvKafkaImport.from_body(body)
    except InvalidResource as invalid:
        print(f"kubectl csvimport: csvimport {args.name!r} has an invalid spec: {invalid}", file=sys.stderr)
        return 1
    if resource.spec.source.single_object:
        print(f"csvimport/{args.name} imports one object, {resource.spec.source.uri}; kubectl csvimport status "
              f"{args.name} shows its progress")
        return 0
    table = resource.spec.checkpoint.table
    try:
        if dynamodb is None:
            import boto3

            dynamodb = boto3.client("dynamodb")
        planned = objects.planned(resource.spec.job_id, list((read_plan or _plan_entries)(dynamodb, resource)),
                                  resource.spec.parallelism)
        checkpoints = Checkpoints(dynamodb).read(table, [item for o in planned for item in o.item_ids])
    except (BotoCoreError, ClientError) as error:
        print(f"kubectl csvimport: cannot read DynamoDB table {table!r} with your AWS credentials: {error}; they "
              "need dynamodb:GetItem and dynamodb:BatchGetItem on it", file=sys.stderr)
        return 1
    except WorkerError as error:
        print(f"kubectl csvimport: {error}", file=sys.stderr)
        return 1
    print(render_objects(args.name, objects.rows(planned, checkpoints)))
    return 0


def _plan_entries(dynamodb: Any, resource: CsvKafkaImport) -> Iterable[ObjectEntry]:
    retrier = Retrier(Service.DYNAMODB, Backoff(DYNAMODB_SECONDS))
    plans = PlanStore(dynamodb, resource.spec.checkpoint.table, resource.spec.job_id, retrier)
    header = plans.header()
    # While the first worker lists the source there is no plan to show yet.
    return plans.entries() if header is not None and header.state is PlanState.COMPLETE else ()


def restart_import(kube: Kube, namespace: str, args: argparse.Namespace) -> int:
    if args.from_row is not None and args.from_row < 1:
        print("kubectl csvimport: --from-row counts data rows from 1", file=sys.stderr)
        return 2
    where = f"at row {args.from_row}" if args.from_row else "from the last checkpoint"
    return _restart(kube, namespace, args.name, args.from_row, f"restarting: the new run starts {where}")


def reset_import(kube: Kube, namespace: str, args: argparse.Namespace) -> int:
    body = kube.get_import(namespace, args.name)
    if body is None:
        return _not_found(namespace, args.name)
    if _many_objects(body):
        # Each object keeps its own checkpoints: a rerun of all of them resets each one as it comes.
        return _rerun(kube, namespace, args.name, RerunMode.ALL,
                      "resetting: a new run lists the source again and imports every object from its first row")
    return _restart(kube, namespace, args.name, 1,
                    "resetting: the checkpoints are deleted and the new run imports everything from row 1")


def rerun_import(kube: Kube, namespace: str, args: argparse.Namespace) -> int:
    body = kube.get_import(namespace, args.name)
    if body is None:
        return _not_found(namespace, args.name)
    if not _many_objects(body):
        print(f"kubectl csvimport: csvimport {args.name!r} imports one object; kubectl csvimport restart continues "
              "it and kubectl csvimport reset imports it again", file=sys.stderr)
        return 1
    mode = RerunMode(args.mode)
    return _rerun(kube, namespace, args.name, mode, f"rerunning: a new run lists the source again and imports "
                                                    f"{_RERUN_IMPORTS[mode]}")


def suspend_import(kube: Kube, namespace: str, args: argparse.Namespace) -> int:
    return _patch(kube, namespace, args.name, {"spec": {"suspend": True}},
                  "suspending: the workers checkpoint and stop")


def resume_import(kube: Kube, namespace: str, args: argparse.Namespace) -> int:
    return _patch(kube, namespace, args.name, {"spec": {"suspend": False}},
                  "resuming from the last checkpoint")


_RERUN_IMPORTS = {RerunMode.NEW: "the objects not completed yet",
                  RerunMode.CHANGED: "the objects not completed yet and those whose ETag changed",
                  RerunMode.ALL: "every object"}


def _many_objects(body: Json) -> bool:
    try:
        return not SourceSpec.model_validate((body.get("spec") or {}).get("source") or {}).single_object
    except ValidationError:
        return False


def _run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def _restart(kube: Kube, namespace: str, name: str, from_row: int | None, what: str) -> int:
    restart_id = _run_id()
    # fromRow is always named: a merge patch would otherwise keep the previous restart's row.
    return _patch(kube, namespace, name, {"spec": {"restart": {"id": restart_id, "fromRow": from_row}}},
                  f"{what} (restart id {restart_id})")


def _rerun(kube: Kube, namespace: str, name: str, mode: RerunMode, what: str) -> int:
    rerun_id = _run_id()
    return _patch(kube, namespace, name, {"spec": {"rerun": {"id": rerun_id, "mode": mode.value}}},
                  f"{what} (rerun id {rerun_id})")


def _patch(kube: Kube, namespace: str, name: str, patch: Json, done: str) -> int:
    if kube.patch_import(namespace, name, patch) is None:
        return _not_found(namespace, name)
    print(f"csvimport/{name} {done}")
    return 0


def _not_found(namespace: str, name: str) -> int:
    print(f"kubectl csvimport: csvimport {name!r} not found in namespace {namespace!r}", file=sys.stderr)
    return 1


def _api_message(error: ApiException) -> str:
    try:
        return str(json.loads(error.body or "{}").get("message") or error.body)
    except ValueError:
        return str(error.body)


# -- the status report -----------------------------------------------------------------------------


def render_status(body: Json) -> str:
    meta = body["metadata"]
    try:
        spec = CsvKafkaImport.from_body(body).spec
        setup = (f"{spec.source_text()} -> topic {spec.sink.topic} ({spec.delivery}, capacity {spec.capacity}, "
                 f"{spec.parallelism} shard{'s' if spec.parallelism > 1 else ''})")
    except InvalidResource as invalid:
        setup = f"invalid spec: {invalid}"
    status = ImportStatus.model_validate(body.get("status") or {})
    progressing = status.condition("Progressing")
    lines = [
        f"csvimport/{meta['name']} in namespace {meta['namespace']}: {status.phase or 'not yet seen by the operator'}",
        f"  {setup}",
    ]
    if progressing is not None:
        lines.append(f"  {progressing.reason}: {progressing.message}")
    lines.append(
        f"  rows read {_n(status.records_read)}, sent {_n(status.records_sent)}, bad {_n(status.records_bad)}; "
        f"progress {status.progress or '-'}; {_n(status.rows_per_second)} rows/s; ETA {status.eta or '-'}")
    lines.append(f"  job {status.job_name or '-'}, started {status.start_time or '-'}, "
                 f"completed {status.completion_time or '-'}, last checkpoint {status.last_checkpoint_time or '-'}")
    if status.objects_summary is not None:
        slowest = status.slowest_shard
        lines.append(f"  objects done {status.objects_summary}"
                     + (f"; slowest shard {slowest.index} at {slowest.progress or '-'}" if slowest else "")
                     + f"; kubectl csvimport objects {meta['name']} lists them")
    if status.shards:
        lines += ["", _table(["SHARD", "STATE", "READ", "SENT", "BAD", "PROGRESS", "ROWS/S", "LAST CHECKPOINT",
                              "MESSAGE"],
                             [[str(s.index), s.state, _n(s.records_read), _n(s.records_sent), _n(s.records_bad),
                               s.progress or "-", _n(s.rows_per_second), s.last_checkpoint_time or "-",
                               s.message or ""] for s in status.shards])]
    if status.failed_objects:
        lines += ["", _table(["FAILED OBJECT", "REASON", "MESSAGE"],
                             [[f.uri, f.reason, f.message or ""] for f in status.failed_objects])]
    if status.conditions:
        lines += ["", _table(["CONDITION", "STATUS", "REASON", "SINCE", "MESSAGE"],
                             [[c.type, c.status, c.reason, c.last_transition_time, c.message]
                              for c in status.conditions])]
    return "\n".join(lines)


def render_objects(name: str, rows: Sequence[objects.ObjectRow]) -> str:
    if not rows:
        return (f"csvimport/{name}: no objects planned yet (the first worker lists the source when it starts, "
                "or the source matched no object)")
    states: dict[str, int] = {}
    for row in rows:
        states[row.state] = states.get(row.state, 0) + 1
    counts = ", ".join(f"{count:,} {state}" for state, count in sorted(states.items()))
    return "\n".join([
        f"csvimport/{name}: {len(rows):,} object{'s' if len(rows) > 1 else ''} in the plan: {counts}", "",
        _table(["OBJECT", "STATE", "SENT", "BAD", "BYTES", "PROGRESS", "REASON"],
               [[r.uri, r.state, _n(r.rows_sent), _n(r.rows_bad), _n(r.size), r.progress or "-", r.reason]
                for r in rows])])


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in [header, *rows])


if __name__ == "__main__":
    sys.exit(main())
