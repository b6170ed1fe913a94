"""One pass over one import: make its run's Job exist as the spec says, then mirror what is observed.

Level-based: each pass starts from what is there now (the resource, its Jobs, pods and checkpoints),
so create, resume, spec edits, Job events and the timer all run the same `reconcile`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from csvkafka_operator import cleanup, stalls, status
from csvkafka_operator.capacity import PodCap
from csvkafka_operator.checkpoints import Checkpoints, TableNotFound
from csvkafka_operator.jobs import job_name, render_job, service_account
from csvkafka_operator.k8s import Json, Kube
from csvkafka_operator.models import API_VERSION, KIND, CsvKafkaImport, ImportStatus, InvalidResource
from csvkafka_operator.settings import Settings
from csvkafka_operator.status import Blocker, Event, Observed
from csvkafka_worker.planstore import header_id

Emit = Callable[[Json, Event], None]
QUEUED = "Queued"
# A queued import starts when a Job event frees pods; a timer looks again this seldom, as a backstop.
QUEUED_RECHECK_SECONDS = 30.0


class Reconciler:
    def __init__(self, kube: Kube, checkpoints: Checkpoints, settings: Settings, *, emit: Emit,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.kube = kube
        self.checkpoints = checkpoints
        self.settings = settings
        self.emit = emit
        self.clock = clock
        self.cap = PodCap(settings.max_worker_pods_per_namespace)
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], threading.Lock] = {}

    def job_event(self, job: Json, *, deleted: bool) -> None:
        """A Job of the operator's changed: its import's pass, then the queued imports its pods may make room for."""
        self.cap.observe(job, deleted=deleted)
        meta = job["metadata"]
        for owner in meta.get("ownerReferences", []):
            if owner.get("apiVersion") == API_VERSION and owner.get("kind") == KIND:
                self.reconcile(meta["namespace"], owner["name"])
        # Each queued import that may fit gets its pass; one that is gone or still waits makes room for the next.
        tried: set[str] = set()
        while fits := [name for name in self.cap.next_up(meta["namespace"]) if name not in tried]:
            for name in fits:
                tried.add(name)
                self.reconcile(meta["namespace"], name)

    def reconcile(self, namespace: str, name: str) -> None:
        # kopf runs change handlers, timers and Job events of one import concurrently; a restart must
        # never be carried out twice, so passes over the same import take turns.
        with self._lock(namespace, name):
            body = self.kube.get_import(namespace, name)
            if body is None or body["metadata"].get("deletionTimestamp"):
                self.cap.leave(namespace, name)
                return
            previous = ImportStatus.model_validate(body.get("status") or {})
            try:
                resource = CsvKafkaImport.from_body(body)
            except InvalidResource as invalid:
                generation = int(body["metadata"].get("generation", 0))
                self._publish(body, previous, status.invalid(previous, generation, str(invalid), self.clock()))
                return
            job, blocker = self._ensure(resource)
            if blocker is None or blocker.reason != QUEUED:
                self.cap.leave(namespace, name)
            current = status.compute(resource, self._observe(resource, job, blocker), self.clock())
            # A stalled worker's pod is deleted (a failure the Job counts against its retries) and its
            # next pod resumes from the checkpoint. Deleted before the status says so: a failed delete
            # leaves the status as it was, and the next pass finds the stall again.
            for pod in stalls.newly_stalled(previous, current.job_name or "", current.shards):
                self.kube.delete_pod(resource.metadata.namespace, pod)
            self._publish(body, previous, current)

    def finalize(self, body: Json) -> bool:
        """For checkpoint retention Delete: stop the workers, then delete the checkpoints. False while
        workers are still stopping."""
        resource = CsvKafkaImport.from_body(body)
        if self._stop_jobs(resource, self._owned_jobs(resource)):
            return False
        table = resource.spec.checkpoint.table
        self.checkpoints.delete(table, [*self._every_shard_id(resource), *self._objects_ids(resource)])
        return True

    def _objects_ids(self, resource: CsvKafkaImport) -> list[str]:
        """A multi-object import's plan, objects and receipts (none for a single object)."""
        if resource.spec.source.single_object:
            return []
        table, job_id = resource.spec.checkpoint.table, resource.spec.job_id
        header = self.checkpoints.raw(table, [header_id(job_id)]).get(header_id(job_id))
        pages = self.checkpoints.raw(table, cleanup.page_ids(job_id, header))
        return cleanup.kept_ids(job_id, header, pages.values(), resource.spec.parallelism)

    # -- the Job ---------------------------------------------------------------------------------

    def _ensure(self, resource: CsvKafkaImport) -> tuple[Json | None, Blocker | None]:
        namespace, desired = resource.metadata.namespace, job_name(resource)
        owned = self._owned_jobs(resource)
        stale = [job for job in owned if job["metadata"]["name"] != desired]
        if self._stop_jobs(resource, stale):
            names = ", ".join(job["metadata"]["name"] for job in stale)
            return None, Blocker("StoppingPreviousRun", f"waiting for Job {names} of the previous run to stop",
                                 failed=False)
        job = next((job for job in owned if job["metadata"]["name"] == desired), None)
        if job is not None:
            # What a Job may change: suspension, and while it runs its deadline (raised to let it
            # finish; an ended Job keeps the one it ran under).
            wanted: dict[str, Any] = {"suspend": resource.spec.suspend}
            now: dict[str, Any] = {"suspend": bool(job["spec"].get("suspend"))}
            if not status.job_ended(job):
                wanted["activeDeadlineSeconds"] = resource.spec.active_deadline_seconds
                now["activeDeadlineSeconds"] = job["spec"].get("activeDeadlineSeconds")
            changes = {key: value for key, value in wanted.items() if now[key] != value}
            if changes:
                job = self.kube.patch_job(namespace, desired, {"spec": changes})
            return job, None
        if status.finished(resource):
            return None, None
        blocker = self._preflight(resource)
        if blocker is not None:
            return None, blocker
        with self.cap.starting(namespace):
            if self.cap.enabled and self.cap.needs_count(namespace):
                self.cap.count(namespace, self.kube.list_managed_jobs(namespace))
            # A suspended import's Job runs no pods until it is resumed.
            queued = self.cap.admit(namespace, resource.metadata.name,
                                    0 if resource.spec.suspend else resource.spec.parallelism)
            if queued is not None:
                return None, Blocker(QUEUED, queued, failed=False)
            try:
                self._carry_out_restart(resource)
            except TableNotFound as missing:
                return None, Blocker("CheckpointTableNotFound", str(missing), failed=True)
            created = self.kube.create_job(render_job(resource, self.settings))
            self.cap.observe(created)
            return created, None

    def _owned_jobs(self, resource: CsvKafkaImport) -> list[Json]:
        # The label finds candidates; the owner uid rules out Jobs of a deleted namesake.
        return [job for job in self.kube.list_jobs(resource.metadata.namespace, resource.metadata.name)
                if any(ref.get("uid") == resource.metadata.uid for ref in job["metadata"].get("ownerReferences", []))]

    def _stop_jobs(self, resource: CsvKafkaImport, jobs: Sequence[Json]) -> bool:
        """Deletes the Jobs; True while any of them still exists."""
        for job in jobs:
            self.kube.delete_job(resource.metadata.namespace, job["metadata"]["name"])
        return bool(jobs)

    def _preflight(self, resource: CsvKafkaImport) -> Blocker | None:
        """What would keep the worker pods from starting, said before they are created."""
        namespace = resource.metadata.namespace
        account = service_account(resource, self.settings)
        if not self.kube.service_account_exists(namespace, account):
            return Blocker("ServiceAccountNotFound", (
                f"ServiceAccount {account!r} does not exist in namespace {namespace}; the worker pods run as it "
                "(its IRSA role reads the source and writes the checkpoints). Create it, or name another one in "
                "spec.serviceAccountName. The import starts once it exists"), failed=True)
        ref = resource.spec.sink.auth.secret_ref
        if ref is None:
            return None
        try:
            keys = self.kube.secret_keys(namespace, ref.name)
        except ApiException as error:
            if error.status == 403:
                return None  # not granted to read Secrets: the pod's own start-up reports a missing one
            raise
        if keys is None:
            return Blocker("SecretNotFound", (
                f"Secret {ref.name!r} named by spec.sink.auth.secretRef does not exist in namespace {namespace}; "
                f"create it with the SCRAM password under the key {ref.key!r} (kubectl create secret generic "
                f"{ref.name} -n {namespace} --from-literal={ref.key}=...). The import starts once it exists"),
                failed=True)
        if ref.key not in keys:
            return Blocker("SecretKeyNotFound", (
                f"Secret {ref.name!r} has no key {ref.key!r} (it has: {', '.join(sorted(keys)) or 'none'}); add "
                "the password under that key, or set spec.sink.auth.secretRef.key to the key that holds it"),
                failed=True)
        return None

    def _carry_out_restart(self, resource: CsvKafkaImport) -> None:
        """A new restart.id with fromRow rewrites the checkpoints, once: before its run's Job exists."""
        restart, spec = resource.spec.restart, resource.spec
        if restart is None or restart.from_row is None or restart.id == resource.status.observed_restart_id:
            return
        table = spec.checkpoint.table
        if restart.from_row == 1:
            self.checkpoints.delete(table, self._every_shard_id(resource))
        else:
            self.checkpoints.start_at_row(table, spec.job_id, restart.from_row,
                                          f"set by restart {restart.id!r} to start at row {restart.from_row}")

    def _every_shard_id(self, resource: CsvKafkaImport) -> list[str]:
        # Also the shards of the previous run, in case parallelism changed with this reset.
        return list(dict.fromkeys([*resource.spec.shard_job_ids(), *(s.job_id for s in resource.status.shards)]))

    # -- the status ------------------------------------------------------------------------------

    def _observe(self, resource: CsvKafkaImport, job: Json | None, blocker: Blocker | None) -> Observed:
        pods = self.kube.list_pods(resource.metadata.namespace, job["metadata"]["name"]) if job else []
        checkpoints = self.checkpoints.read(resource.spec.checkpoint.table, resource.spec.shard_job_ids())
        return Observed(job=job, pods=pods, checkpoints=checkpoints, blocker=blocker)

    def _publish(self, body: Json, previous: ImportStatus, current: ImportStatus) -> None:
        if current == previous:
            return
        patch: dict[str, Any] = current.to_api()
        # A merge patch leaves out what it does not name: fields that no longer apply are nulled.
        patch |= {key: None for key in body.get("status") or {} if key not in patch}
        meta = body["metadata"]
        self.kube.patch_import_status(meta["namespace"], meta["name"], patch)
        event = status.transition(previous, current)
        if event is not None:
            self.emit(body, event)

    def _lock(self, namespace: str, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault((namespace, name), threading.Lock())
