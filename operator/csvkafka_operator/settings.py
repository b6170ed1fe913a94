"""The operator's settings, read once from the environment (the Helm chart sets them)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib.metadata import version
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# Setting → environment variable. JSON ones hold an object of strings.
ENV = {
    "worker_image": "CSVKAFKA_WORKER_IMAGE",
    "worker_service_account": "CSVKAFKA_WORKER_SERVICE_ACCOUNT",
    "worker_env": "CSVKAFKA_WORKER_ENV",
    "worker_metrics_port": "CSVKAFKA_WORKER_METRICS_PORT",
    "fargate_labels": "CSVKAFKA_FARGATE_LABELS",
    "job_ttl_seconds": "CSVKAFKA_JOB_TTL_SECONDS",
    "namespaces": "CSVKAFKA_NAMESPACES",
    "interval_seconds": "CSVKAFKA_INTERVAL_SECONDS",
}
JSON_SETTINGS = ("worker_env", "fargate_labels")


class SettingsError(ValueError):
    pass


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # The image's tag follows the operator's version unless the chart pins another.
    worker_image: str = Field(default_factory=lambda: f"csvkafka:{version('csvkafka')}", min_length=1)
    # The ServiceAccount whose IRSA role reads the sources and writes the checkpoint table.
    worker_service_account: str = "csvkafka-worker"
    # Environment every worker pod gets, e.g. AWS_ENDPOINT_URL on a local stack.
    worker_env: dict[str, str] = Field(default_factory=dict)
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
                    raise SettingsError(f"{name} must be a JSON object of strings: {bad}") from bad
            elif field == "namespaces":
                # One pattern, not split: kopf reads `a,!b` in order, so splitting would lose exclusions.
                raw[field] = (value,)
            else:
                raw[field] = value
        try:
            return cls.model_validate(raw)
        except ValidationError as invalid:
            names = {field: f"{name} ({field})" for field, name in ENV.items()}
            raise SettingsError("; ".join(f"{names.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}"
                                          for e in invalid.errors())) from invalid
