"""`csvkafka operator`: the kopf process, tuned for production and run standalone (one replica)."""

from __future__ import annotations

import argparse
import functools
import os
import socket
import sys
from typing import Any, cast

import kopf

from csvkafka_operator import handlers
from csvkafka_operator.checkpoints import SharedReads
from csvkafka_operator.counters import Requests, count_dynamodb, count_kubernetes
from csvkafka_operator.k8s import Json, Kube, connect
from csvkafka_operator.reconcile import Reconciler
from csvkafka_operator.settings import Settings, SettingsError
from csvkafka_operator.status import Event

PREFIX = "csvkafka.io"


def run(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as error:
        print(f"csvkafka operator: {error}", file=sys.stderr)
        return 2
    namespaces = tuple(args.namespaces or settings.namespaces)
    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat[args.log_format.upper()])
    registry = kopf.OperatorRegistry()
    kopf.on.login(registry=registry)(kopf.login_via_client)
    kopf.on.startup(registry=registry)(functools.partial(tune, max_workers=settings.max_workers))
    requests = Requests()
    # The liveness endpoint reports the requests so far (kopf's own watches, patches and events not included).
    kopf.on.probe(id="requests", registry=registry)(lambda **_: requests.snapshot())
    api = connect()
    count_kubernetes(api, requests)
    import boto3

    dynamodb = boto3.client("dynamodb")
    count_dynamodb(dynamodb, requests)
    reconciler = Reconciler(Kube(api), SharedReads(dynamodb), settings, emit=post_event)
    handlers.register(registry, reconciler, settings)
    kopf.run(registry=registry, standalone=True, clusterwide=not namespaces, namespaces=namespaces,
             liveness_endpoint=args.liveness)
    return 0


def tune(settings: kopf.OperatorSettings, max_workers: int, **_: Any) -> None:
    # Our own names for what kopf keeps on the resources; changing them later re-runs handlers.
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration")
    # Cloud load balancers silently drop idle watch connections: end each watch before they do,
    # and give up on a stuck one a little later.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.networking.connect_timeout = 30
    settings.posting.reporting_component = "csvkafka-operator"
    settings.posting.reporting_instance = socket.gethostname()
    # The threads that run the (synchronous) reconcile passes: Job events of one import wait for no
    # more than this many other passes.
    settings.execution.max_workers = max_workers


def post_event(body: Json, event: Event) -> None:
    kopf.event(kopf.Body(cast(kopf.RawBody, body)), type=event.type, reason=event.reason, message=event.message)
