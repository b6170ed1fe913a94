"""The operator's settings, read once from the environment (the Helm chart sets them)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

# Setting → environment variable. JSON ones hold an object of strings (worker_env: or a list of EnvVars).
ENV = {
    "worker_image": "CSVKAFKA_WORKER_IMAGE",
    "worker_service_account": "CSVKAFKA_WORKER_SERVICE_ACCOUNT",
    "worker_env": "CSVKAFKA_WORKER_ENV",
    "worker_metrics_port": "CSVKAFKA_WORKER_METRICS_PORT",
    "fargate_labels": "CSVKAFKA_FARGATE_LABELS",
    "job_ttl_seconds": "CSVKAFKA_JOB_TTL_SECONDS",
    "namespaces": "CSVKAFKA_NAMESPACES",
    "interval_seconds": "CSVKAFKA_INTERVAL_SECONDS",
    "max_worker_pods_per_namespace": "CSVKAFKA_MAX_PODS_PER_NAMESPACE",
    "max_workers": "CSVKAFKA_MAX_WORKERS",
}
JSON_SETTINGS = ("worker_env", "fargate_labels")


class SettingsError(ValueError):
    pass


class KeyRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    key: str = Field(min_length=1)
    optional: bool | None = None


class EnvSource(BaseModel):
    """Where a variable's value is read when the pod starts: only references, never the value itself."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    secret_key_ref: KeyRef | None = None
    config_map_key_ref: KeyRef | None = None

    @model_validator(mode="after")
    def _one(self) -> EnvSource:
        if (self.secret_key_ref is None) == (self.config_map_key_ref is None):
            raise ValueError("valueFrom needs exactly one of secretKeyRef or configMapKeyRef")
        return self


class EnvVar(BaseModel):
    """Kubernetes' EnvVar, as far as worker pods need it: a plain value or a key of a Secret or ConfigMap in
    the import's namespace."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    name: str = Field(pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
    value: str | None = None
    value_from: EnvSource | None = None

    @model_validator(mode="after")
    def _one(self) -> EnvVar:
        if (self.value is None) == (self.value_from is None):
            raise ValueError(f"{self.name}: give either value or valueFrom (secretKeyRef for anything secret)")
        return self

    def to_api(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


def _env_list(raw: Any) -> Any:
    """The former form, an object of name: value strings, read as the list it stands for."""
    if isinstance(raw, dict):
        return [{"name": name, "value": value} for name, value in sorted(raw.items())]
    return raw


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # The image's tag follows the operator's version unless the chart pins another.
    worker_image: str = Field(default_factory=lambda: f"csvkafka:{version('csvkafka')}", min_length=1)
    # The ServiceAccount whose IRSA role reads the sources and writes the checkpoint table.
    worker_service_account: str = "csvkafka-worker"
    # Environment every worker pod gets, e.g. AWS_REGION, or a Secret's key by reference.
    worker_env: Annotated[tuple[EnvVar, ...], BeforeValidator(_env_list)] = ()
    # 0 turns the worker's Prometheus endpoint off.
    worker_metrics_port: int = Field(default=9102, ge=0, le=65535)
    # The labels the EKS Fargate profile selects; stamped on capacity: fargate pods.
    fargate_labels: dict[str, str] = Field(default_factory=lambda: {"csvkafka.io/capacity": "fargate"})
    # Finished Jobs (and their pods' logs) stay this long; the import's status outlives them.
    job_ttl_seconds: int = Field(default=3600, ge=0)
    # kopf namespace patterns; one may list several globs, `!` excluding (`*,!kube-*`). Empty: all.
    namespaces: tuple[str, ...] = ()
    # How often a running import's status is refreshed from its checkpoints.
    interval_seconds: float = Field(default=5.0, gt=0)
    # Worker pods of all imports of one namespace that may run at once (the parallelism of the active
    # Jobs); an import that would go over it waits, queued. 0: no cap.
    max_worker_pods_per_namespace: int = Field(default=20, ge=0)
    # Reconcile passes that run at once (kopf's thread pool for its handlers).
    max_workers: int = Field(default=16, ge=1)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        raw: dict[str, Any] = {}
        for field, name in ENV.items():
            value = env.get(name, "").strip()
            if not value:
                continue
            if field in JSON_SETTINGS:
                try:
                    raw[field] = json.loads(value)
                except json.JSONDecodeError as bad:
                    what = "a JSON list of EnvVars" if field == "worker_env" else "a JSON object of strings"
                    raise SettingsError(f"{name} must be {what}: {bad}") from bad
            elif field == "namespaces":
                # One pattern, not split: kopf reads `a,!b` in order, so splitting would lose exclusions.
                raw[field] = (value,)
            else:
                raw[field] = value
        try:
            return cls.model_validate(raw)
        except ValidationError as invalid:
            names = {field: f"{name} ({field})" for field, name in ENV.items()}
            raise SettingsError("; ".join(f"{names.get(str(e['loc'][0]), e['loc'][0])}{_where(e['loc'][1:])}: "
                                          f"{e['msg'].removeprefix('Value error, ')}"
                                          for e in invalid.errors())) from invalid


def _where(loc: Sequence[int | str]) -> str:
    """Where in a JSON setting a problem is, e.g. ` [2].valueFrom.secretKeyRef`."""
    return " " + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") if loc else ""
