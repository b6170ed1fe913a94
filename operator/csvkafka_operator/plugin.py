"""`kubectl csvimport`: an import's progress per shard, and its lifecycle as one-word commands.

Every command edits the resource's spec the way a person would (restart, suspend), so the operator
does the work and `kubectl get -o yaml` shows what was asked for. Under GitOps, make the same
change in the repository instead, or the next sync reverts it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from csvkafka_operator.k8s import Json, Kube, connect, kubeconfig_namespace
from csvkafka_operator.models import CsvKafkaImport, ImportStatus, InvalidResource


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
    restart = command("restart", restart_import, "stop the current run and start a new one, from the checkpoint "
                                                 "or from a given row")
    restart.add_argument("--from-row", type=int, metavar="N",
                         help="start at data row N (1-based, header excluded); default: continue from the checkpoint")
    command("reset", reset_import, "delete the checkpoints and import everything again from the first row")
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


def restart_import(kube: Kube, namespace: str, args: argparse.Namespace) -> int:
    if args.from_row is not None and args.from_row < 1:
        print("kubectl csvimport: --from-row counts data rows from 1", file=sys.stderr)
        return 2
    where = f"at row {args.from_row}" if args.from_row else "from the last checkpoint"
    return _restart(kube, namespace, args.name, args.from_row, f"restarting: the new run starts {where}")


def reset_import(kube: Kube, namespace: str, args: argparse.Namespace) -> int:
    return _restart(kube, namespace, args.name, 1,
                    "resetting: the checkpoints are deleted and the new run imports everything from row 1")


def suspend_import(kube: Kube, namespace: str, args: argparse.Namespace) -> int:
    return _patch(kube, namespace, args.name, {"spec": {"suspend": True}},
                  "suspending: the workers checkpoint and stop")


def resume_import(kube: Kube, namespace: str, args: argparse.Namespace) -> int:
    return _patch(kube, namespace, args.name, {"spec": {"suspend": False}},
                  "resuming from the last checkpoint")


def _restart(kube: Kube, namespace: str, name: str, from_row: int | None, what: str) -> int:
    restart_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    # fromRow is always named: a merge patch would otherwise keep the previous restart's row.
    return _patch(kube, namespace, name, {"spec": {"restart": {"id": restart_id, "fromRow": from_row}}},
                  f"{what} (restart id {restart_id})")


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
        setup = (f"{spec.source.uri} -> topic {spec.sink.topic} ({spec.delivery}, capacity {spec.capacity}, "
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
    if status.shards:
        lines += ["", _table(["SHARD", "STATE", "READ", "SENT", "BAD", "PROGRESS", "ROWS/S", "LAST CHECKPOINT",
                              "MESSAGE"],
                             [[str(s.index), s.state, _n(s.records_read), _n(s.records_sent), _n(s.records_bad),
                               s.progress or "-", _n(s.rows_per_second), s.last_checkpoint_time or "-",
                               s.message or ""] for s in status.shards])]
    if status.conditions:
        lines += ["", _table(["CONDITION", "STATUS", "REASON", "SINCE", "MESSAGE"],
                             [[c.type, c.status, c.reason, c.last_transition_time, c.message]
                              for c in status.conditions])]
    return "\n".join(lines)


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in [header, *rows])


if __name__ == "__main__":
    sys.exit(main())
