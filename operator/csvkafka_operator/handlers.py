"""The kopf handlers: thin entry points, each handing one import to the Reconciler."""

from __future__ import annotations

from typing import Any

import kopf

from csvkafka_operator.jobs import LABEL_MANAGED_BY, MANAGED_BY
from csvkafka_operator.models import GROUP, PLURAL, VERSION, Retention
from csvkafka_operator.reconcile import QUEUED, QUEUED_RECHECK_SECONDS, Reconciler
from csvkafka_operator.settings import Settings

IMPORTS = (GROUP, VERSION, PLURAL)


def queued(status: kopf.Status, **_: Any) -> bool:
    return any(c.get("type") == "Progressing" and c.get("reason") == QUEUED for c in status.get("conditions") or [])


def polled(status: kopf.Status, **_: Any) -> bool:
    # Only running imports are polled; a finished one also loses the finalizer the timers need. A queued
    # one is started by the Job events that free its pods.
    return not status.get("completionTime") and not queued(status)


def deletes_checkpoints(spec: kopf.Spec, **_: Any) -> bool:
    # Only then is a finalizer worth its cost (deletion blocked while the operator is down).
    return bool(spec.get("checkpoint", {}).get("retention") == Retention.DELETE)


def register(registry: kopf.OperatorRegistry, reconciler: Reconciler, settings: Settings) -> None:
    def reconcile(namespace: str | None, name: str) -> None:
        # kopf's signatures also cover cluster-scoped kinds; imports always have a namespace.
        if namespace:
            reconciler.reconcile(namespace, name)

    # Explicit ids: kopf keys its progress annotations on them.
    @kopf.on.resume(*IMPORTS, id="ensure", registry=registry)
    @kopf.on.create(*IMPORTS, id="ensure", registry=registry)
    @kopf.on.update(*IMPORTS, id="ensure", field="spec", registry=registry)
    def ensure(namespace: str | None, name: str, **_: Any) -> None:
        reconcile(namespace, name)

    @kopf.timer(*IMPORTS, id="refresh", interval=settings.interval_seconds, when=polled, registry=registry)
    def refresh(namespace: str | None, name: str, **_: Any) -> None:
        reconcile(namespace, name)

    # The Job events start queued imports; this only backs them up.
    @kopf.timer(*IMPORTS, id="queued", interval=QUEUED_RECHECK_SECONDS, when=queued, registry=registry)
    def recheck(namespace: str | None, name: str, **_: Any) -> None:
        reconcile(namespace, name)

    @kopf.on.event("batch", "v1", "jobs", id="job-changed", labels={LABEL_MANAGED_BY: MANAGED_BY},
                   registry=registry)
    def job_changed(body: kopf.Body, type: str | None, **_: Any) -> None:
        reconciler.job_event(dict(body), deleted=type == "DELETED")

    @kopf.on.delete(*IMPORTS, id="delete-checkpoints", when=deletes_checkpoints, registry=registry)
    def delete_checkpoints(body: kopf.Body, **_: Any) -> None:
        if not reconciler.finalize(dict(body)):
            raise kopf.TemporaryError("waiting for the import's worker pods to stop before deleting its checkpoints",
                                      delay=2)
