"""The CsvKafkaImport resource as typed models, parsed once at the edge.

The spec extends the worker's ImportSpec (the contract both sides share) with what only the operator
needs: where and how the worker pods run, suspension, restarts and checkpoint retention. The CRD in
crds/ is the schema's source of truth; tests/unit/test_operator_models.py holds this file to it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from csvkafka_worker.checkpoint import shard_job_id
from csvkafka_worker.spec import AuthMechanism, AuthSpec, CheckpointSpec, ImportSpec, Model, SinkSpec

GROUP = "csvkafka.io"
VERSION = "v1alpha1"
PLURAL = "csvimports"
KIND = "CsvKafkaImport"
API_VERSION = f"{GROUP}/{VERSION}"

MIN_STALL_TIMEOUT_SECONDS = 10

SCRAM = (AuthMechanism.SCRAM_SHA_256, AuthMechanism.SCRAM_SHA_512)


class Capacity(StrEnum):
    ON_DEMAND = "on-demand"
    SPOT = "spot"
    FARGATE = "fargate"


class Retention(StrEnum):
    RETAIN = "Retain"
    DELETE = "Delete"


class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class SecretKeyRef(Model):
    name: str
    key: str = "password"


class ConfigMapKeyRef(Model):
    name: str
    key: str = "ca.crt"


class ResourceAuth(AuthSpec):
    secret_ref: SecretKeyRef | None = None
    # A private CA for the brokers, mounted into the worker pods (caFile is a path in the image).
    ca_config_map_ref: ConfigMapKeyRef | None = None

    # Replaces AuthSpec's check of the same name: in a resource the password is never inline, it
    # reaches the worker from the Secret that secretRef names.
    @model_validator(mode="after")
    def _complete(self) -> ResourceAuth:
        if self.mechanism in SCRAM and not (self.username and self.secret_ref):
            raise ValueError(f"auth mechanism {self.mechanism} needs a username and a secretRef")
        if self.ca_config_map_ref and (self.ca_file or not self.tls):
            raise ValueError("caConfigMapRef needs tls: true and no caFile (it sets the worker's CA file)")
        return self


class ResourceSink(SinkSpec):
    auth: ResourceAuth = ResourceAuth()


class ResourceCheckpoint(CheckpointSpec):
    retention: Retention = Retention.RETAIN


Quantity = int | str


class Resources(Model):
    requests: dict[str, Quantity] = Field(default_factory=dict)
    limits: dict[str, Quantity] = Field(default_factory=dict)


DEFAULT_RESOURCES = Resources(requests={"cpu": "1", "memory": "1Gi"}, limits={"memory": "1Gi"})


class Restart(Model):
    id: str = Field(min_length=1)
    # The first data row of the new run; 1 is a reset, None continues from the checkpoint.
    from_row: int | None = Field(default=None, ge=1)


# A Go duration of whole hours, minutes and seconds (10m, 90s, 1h30m), as the CRD's pattern has it.
DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def seconds_of(duration: str) -> int:
    match = DURATION.match(duration)
    if not duration or match is None:
        raise ValueError(f"{duration!r} is not a duration such as 90s, 10m or 1h30m")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


class ResourceSpec(ImportSpec):
    sink: ResourceSink
    checkpoint: ResourceCheckpoint
    parallelism: int = Field(default=1, ge=1, le=64)
    capacity: Capacity = Capacity.ON_DEMAND
    resources: Resources = DEFAULT_RESOURCES
    service_account_name: str | None = None
    suspend: bool = False
    restart: Restart | None = None
    # A running worker whose checkpoint does not move for this long is stopped, and the Job's next
    # pod resumes from the checkpoint; 0s turns the watch off.
    stall_timeout: str = "10m"
    # Passed to the Job: the import fails (DeadlineExceeded) once it has run this long.
    active_deadline_seconds: int | None = Field(default=None, ge=1)

    @field_validator("stall_timeout")
    @classmethod
    def _a_duration(cls, value: str) -> str:
        seconds = seconds_of(value)
        if 0 < seconds < MIN_STALL_TIMEOUT_SECONDS:
            raise ValueError(f"stallTimeout must be 0s (off) or at least {MIN_STALL_TIMEOUT_SECONDS}s")
        return value

    @model_validator(mode="after")
    def _longer_than_checkpoints(self) -> ResourceSpec:
        # A new worker may wait out a dead one's lease, then checkpoints every everySeconds.
        quiet = self.checkpoint.lease_seconds + 2 * self.checkpoint.every_seconds
        if self.stall_timeout_seconds and self.stall_timeout_seconds < quiet:
            raise ValueError(f"stallTimeout must be at least checkpoint.leaseSeconds + 2 x checkpoint.everySeconds "
                             f"({quiet:g}s here), or a healthy new worker looks stalled before its first checkpoint")
        return self

    @model_validator(mode="after")
    def _rows_of_one_object(self) -> ResourceSpec:
        restart = self.restart
        if restart is not None and restart.from_row is not None and not self.source.single_object:
            raise ValueError("restart.fromRow needs a single-object source: with many objects rows are counted per "
                             "object; to import objects again set a new rerun.id with mode changed or all "
                             "(kubectl csvimport reset is mode all)")
        return self

    @property
    def stall_timeout_seconds(self) -> int:
        return seconds_of(self.stall_timeout)

    def shard_job_ids(self) -> list[str]:
        """The checkpoint item of each shard: of its range of the object, or (many objects) its summary item,
        which is suffixed for a single shard too."""
        if self.source.single_object:
            return [shard_job_id(self.job_id, index, self.parallelism) for index in range(self.parallelism)]
        return [f"{self.job_id}#{index}/{self.parallelism}" for index in range(self.parallelism)]

    def source_text(self) -> str:
        """The source as people read it in messages."""
        uris = self.source.uris
        if uris is None:
            return self.source.uri or ""
        return uris[0] if len(uris) == 1 else f"{uris[0]} and {len(uris) - 1} more objects of source.uris"


class Status(BaseModel):
    # Tolerant of fields it does not know, so that an older operator reads a newer one's status.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")


class Condition(Status):
    type: str
    status: str
    reason: str
    message: str
    last_transition_time: str
    observed_generation: int | None = None


class ShardStatus(Status):
    index: int
    job_id: str
    state: str
    records_read: int = 0
    records_sent: int = 0
    records_bad: int = 0
    bytes_read: int | None = None
    bytes_total: int | None = None
    progress: str | None = None
    rows_per_second: int | None = None
    last_checkpoint_time: str | None = None
    # When the operator last saw the shard's checkpoint move.
    last_progress_time: str | None = None
    # The pod stopped because this shard stalled; set until the shard moves again.
    stalled_pod: str | None = None
    message: str | None = None


class ObjectCounts(Status):
    # None until every shard has counted its objects.
    total: int | None = None
    done: int = 0
    failed: int = 0
    running: int = 0


class FailedObject(Status):
    uri: str
    reason: str
    message: str | None = None


class SlowestShard(Status):
    index: int
    progress: str | None = None


# The failed objects a status lists; `kubectl csvimport objects` lists them all.
MAX_FAILED_OBJECTS = 20


class ImportStatus(Status):
    observed_generation: int | None = None
    observed_restart_id: str | None = None
    observed_rerun_id: str | None = None
    phase: Phase | None = None
    job_name: str | None = None
    start_time: str | None = None
    completion_time: str | None = None
    records_read: int | None = None
    records_sent: int | None = None
    records_bad: int | None = None
    bytes_read: int | None = None
    bytes_total: int | None = None
    progress: str | None = None
    rows_per_second: int | None = None
    eta: str | None = None
    last_checkpoint_time: str | None = None
    source_etag: str | None = None
    stall_restarts: int | None = None
    # Many objects only: a single object's status stays as it was.
    objects: ObjectCounts | None = None
    objects_summary: str | None = None
    failed_objects: tuple[FailedObject, ...] | None = None
    slowest_shard: SlowestShard | None = None
    shards: tuple[ShardStatus, ...] = ()
    conditions: tuple[Condition, ...] = ()

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    def to_api(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class Metadata(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    namespace: str
    uid: str
    generation: int = 0


class InvalidResource(ValueError):
    """The resource's spec is refused by the model (what the CRD's schema could not express)."""


class CsvKafkaImport(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    metadata: Metadata
    spec: ResourceSpec
    status: ImportStatus = ImportStatus()

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> CsvKafkaImport:
        try:
            return cls.model_validate({"metadata": body["metadata"], "spec": body.get("spec", {}),
                                       "status": body.get("status") or {}})
        except ValidationError as invalid:
            raise InvalidResource(describe(invalid)) from invalid

    def reference(self) -> dict[str, Any]:
        """The owner reference that makes Kubernetes delete the import's Jobs with it."""
        return {"apiVersion": API_VERSION, "kind": KIND, "name": self.metadata.name, "uid": self.metadata.uid,
                "controller": True, "blockOwnerDeletion": True}


def describe(invalid: ValidationError) -> str:
    """One clause per problem, each naming the resource field as users write it."""
    return "; ".join(f"{'.'.join(str(p) for p in error['loc'])}: {error['msg'].removeprefix('Value error, ')}"
                     for error in invalid.errors())
