"""render_job as data: the Job each example becomes, and what Kubernetes will do with it."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from csvkafka_operator.jobs import CA_FILE, job_name, render_job
from csvkafka_operator.models import CsvKafkaImport
from csvkafka_operator.settings import Settings
from csvkafka_worker.options import add_flags, parse
from csvkafka_worker.spec import ImportSpec
from tests.unit.chart import of_kind, render, render_error

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SETTINGS = Settings(worker_image="registry.example/csvkafka:1.2.3", worker_env={"AWS_ENDPOINT_URL": "http://s3:4566"},
                    job_ttl_seconds=600)


def example(name: str, uid: str = "6f1c0d0e-1111-4d2a-9f00-000000000001", **spec: Any) -> CsvKafkaImport:
    body = yaml.safe_load((EXAMPLES / name).read_text())
    body["metadata"] |= {"namespace": "data", "uid": uid}
    body["spec"] |= spec
    return CsvKafkaImport.from_body(body)


def pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    return dict(job["spec"]["template"]["spec"])


def container(job: dict[str, Any]) -> dict[str, Any]:
    [only] = pod_spec(job)["containers"]
    return dict(only)


def env_of(job: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(job)["env"]}


def test_one_name_per_run_a_new_one_per_restart_and_per_resource() -> None:
    first = job_name(example("import.yaml"))
    assert first == job_name(example("import.yaml"))
    assert first.startswith("csv-import-") and len(first) <= 63
    assert job_name(example("import.yaml", restart={"id": "again"})) != first
    assert job_name(example("import.yaml", uid="another-resource-with-the-same-name")) != first


def test_a_new_rerun_id_is_a_new_run_and_an_import_without_one_keeps_its_jobs_name() -> None:
    uid = "6f1c0d0e-1111-4d2a-9f00-000000000001"
    # The name Jobs had before reruns existed: a running import must not start a second Job on upgrade.
    assert job_name(example("import.yaml")) == f"csv-import-{hashlib.sha256(f'{uid}/'.encode()).hexdigest()[:10]}"
    assert job_name(example("import.yaml", rerun={"mode": "changed"})) == job_name(example("import.yaml"))
    names = {job_name(example("import.yaml", **spec)) for spec in (
        {}, {"rerun": {"id": "1"}}, {"rerun": {"id": "2"}}, {"restart": {"id": "1"}},
        {"restart": {"id": "1"}, "rerun": {"id": "1"}}, {"restart": {"id": "2"}, "rerun": {"id": "1"}})}
    assert len(names) == 6
    assert job_name(example("import.yaml", rerun={"id": "1", "mode": "all"})) == job_name(
        example("import.yaml", rerun={"id": "1"}))


def test_the_job_belongs_to_the_import_so_that_deleting_it_deletes_the_job() -> None:
    resource = example("import.yaml")
    [owner] = render_job(resource, SETTINGS)["metadata"]["ownerReferences"]
    assert owner == {"apiVersion": "csvkafka.io/v1alpha1", "kind": "CsvKafkaImport", "name": "csv-import",
                     "uid": resource.metadata.uid, "controller": True, "blockOwnerDeletion": True}


MANY_OBJECTS = {
    "source": {"uri": "s3://exports/2026-11-*/part-*.csv.gz", "include": ["**/*.gz"], "exclude": ["**/tmp-*"],
               "modifiedAfter": "2026-11-01T00:00:00Z", "csv": {"expectedHeader": ["id", "name"]}},
    "parallelism": 4, "onObjectError": "skip", "rerun": {"id": "2", "mode": "changed"},
    "rateLimit": {"rowsPerSecond": 5000, "bytesPerSecond": 1e7},
    "receipts": {"topic": "receipts", "manifestUri": "s3://exports/manifests/run.json"},
}


@pytest.mark.parametrize(("name", "overrides"), [
    *(pytest.param(p.name, {}, id=p.name) for p in sorted(EXAMPLES.glob("*.yaml"))),
    pytest.param("import.yaml", MANY_OBJECTS, id="many-objects"),
    pytest.param("import.yaml", {"source": {"uris": ["s3://a-b/x.csv", "s3://a-b/y"]}}, id="a-list")])
def test_the_worker_command_line_imports_exactly_the_spec(name: str, overrides: dict[str, Any]) -> None:
    resource = example(name, **overrides)
    job = render_job(resource, SETTINGS)
    assert container(job)["command"] == ["csvkafka", "run"]
    parser = argparse.ArgumentParser()
    add_flags(parser)
    # What the kubelet gives the pod: Secret values and, in an Indexed Job, the index.
    env = {name: "from-the-secret" for name, value in env_of(job).items()
           if isinstance(value, dict) and "secretKeyRef" in value}
    env["JOB_COMPLETION_INDEX"] = "3"
    spec, run = parse(parser.parse_args(container(job)["args"]), env)

    expected = resource.spec.model_dump(include=set(ImportSpec.model_fields))
    del expected["sink"]["auth"]["secret_ref"], expected["checkpoint"]["retention"]
    if expected["sink"]["auth"].pop("ca_config_map_ref"):
        expected["sink"]["auth"]["ca_file"] = CA_FILE
    if resource.spec.sink.auth.secret_ref:
        expected["sink"]["auth"]["password"] = "from-the-secret"
    assert spec.model_dump() == expected
    assert run.interrupted_exit_code == 143
    shards = resource.spec.parallelism
    assert (run.shard_index, run.shard_count) == ((3, shards) if shards > 1 else (0, 1))


def test_a_private_ca_comes_from_its_configmap_mounted_read_only() -> None:
    auth = {"mechanism": "scram-sha-512", "tls": True, "username": "u", "secretRef": {"name": "kafka"},
            "caConfigMapRef": {"name": "kafka-ca", "key": "bundle.pem"}}
    resource = example("scram-auth.yaml", sink={"bootstrapServers": "b:9096", "topic": "t", "auth": auth})
    job = render_job(resource, SETTINGS)
    assert pod_spec(job)["volumes"] == [{"name": "kafka-ca", "configMap": {
        "name": "kafka-ca", "items": [{"key": "bundle.pem", "path": "ca.pem"}]}}]
    [mount] = container(job)["volumeMounts"]
    assert mount == {"name": "kafka-ca", "mountPath": CA_FILE.rsplit("/", 1)[0], "readOnly": True}
    args = container(job)["args"]
    assert args[args.index("--ca-file") + 1] == CA_FILE
    # Without one, the pod has no volume and the worker the system's bundle.
    plain = render_job(example("scram-auth.yaml"), SETTINGS)
    assert "volumes" not in pod_spec(plain) and "--ca-file" not in container(plain)["args"]


def test_one_shard_is_a_plain_job_with_bounded_retries() -> None:
    spec = render_job(example("import.yaml"), SETTINGS)["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert "completionMode" not in spec
    assert "--shard" not in container({"spec": spec})["args"]


def test_several_shards_are_an_indexed_job_where_any_failed_index_fails_the_import() -> None:
    spec = render_job(example("spot-parallel.yaml"), SETTINGS)["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 8, 8)
    assert (spec["backoffLimitPerIndex"], spec["maxFailedIndexes"]) == (6, 0)
    assert "backoffLimit" not in spec


def test_interruptions_are_free_and_bad_input_fails_at_once() -> None:
    spec = render_job(example("spot-parallel.yaml"), SETTINGS)["spec"]
    assert spec["podReplacementPolicy"] == "Failed"
    assert spec["podFailurePolicy"]["rules"] == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        {"action": "FailJob", "onExitCodes": {"containerName": "worker", "operator": "In", "values": [65]}},
    ]
    args = container({"spec": spec})["args"]
    assert args[args.index("--interrupted-exit-code") + 1] == "143"
    # The worker must be done checkpointing before the kubelet's SIGKILL.
    shutdown = float(args[args.index("--shutdown-timeout") + 1])
    assert shutdown < spec["template"]["spec"]["terminationGracePeriodSeconds"] <= 120


def test_the_pod_passes_the_restricted_pod_security_profile() -> None:
    job = render_job(example("scram-auth.yaml"), SETTINGS)
    pod = pod_spec(job)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert isinstance(pod["securityContext"]["runAsUser"], int) and pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container(job)["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                                 "capabilities": {"drop": ["ALL"]}}
    assert pod["restartPolicy"] == "Never"
    assert container(job)["terminationMessagePolicy"] == "FallbackToLogsOnError"


@pytest.mark.parametrize(("capacity", "selector", "tolerations", "labels"), [
    ("on-demand", {"eks.amazonaws.com/capacityType": "ON_DEMAND"}, [], {}),
    ("spot", {"eks.amazonaws.com/capacityType": "SPOT"},
     [{"key": "eks.amazonaws.com/capacityType", "operator": "Equal", "value": "SPOT"}], {}),
    ("fargate", {"eks.amazonaws.com/compute-type": "fargate"},
     [{"key": "eks.amazonaws.com/compute-type", "operator": "Equal", "value": "fargate", "effect": "NoSchedule"}],
     {"csvkafka.io/capacity": "fargate"}),
])
def test_capacity_places_the_pods(capacity: str, selector: dict[str, str], tolerations: list[dict[str, str]],
                                  labels: dict[str, str]) -> None:
    job = render_job(example("import.yaml", capacity=capacity), SETTINGS)
    assert pod_spec(job)["nodeSelector"] == selector
    assert pod_spec(job)["tolerations"] == tolerations
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels.items() <= pod_labels.items()
    assert pod_labels["csvkafka.io/import"] == "csv-import"
    if not labels:
        assert "csvkafka.io/capacity" not in pod_labels


def test_fargate_labels_come_from_the_settings() -> None:
    settings = SETTINGS.model_copy(update={"fargate_labels": {"team": "data", "fargate": "yes"}})
    labels = render_job(example("import.yaml", capacity="fargate"), settings)["spec"]["template"]["metadata"]["labels"]
    assert {"team": "data", "fargate": "yes"}.items() <= labels.items()


def test_on_fargate_requests_equal_limits_and_the_limit_decides() -> None:
    resources = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
    fargate = container(render_job(example("import.yaml", capacity="fargate", resources=resources), SETTINGS))
    assert fargate["resources"] == {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
    spot = container(render_job(example("import.yaml", capacity="spot", resources=resources), SETTINGS))
    assert spot["resources"] == resources


def test_the_scram_password_comes_from_the_secret_never_from_the_arguments() -> None:
    job = render_job(example("scram-auth.yaml"), SETTINGS)
    assert env_of(job)["KAFKA_SASL_PASSWORD"] == {"secretKeyRef": {"name": "orders-kafka", "key": "password"}}
    args = container(job)["args"]
    assert "--password" not in args
    assert args[args.index("--username") + 1] == "csvkafka"


def test_workers_get_the_settings_environment_and_their_own_pod_name() -> None:
    env = env_of(render_job(example("import.yaml"), SETTINGS))
    assert env["AWS_ENDPOINT_URL"] == "http://s3:4566"
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "KAFKA_SASL_PASSWORD" not in env


def test_secret_env_reaches_the_workers_as_a_reference_never_as_its_value() -> None:
    settings = Settings.from_env({"CSVKAFKA_WORKER_ENV": json.dumps([
        {"name": "AWS_REGION", "value": "eu-west-1"},
        {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "importer", "key": "token"}}}])})
    job = render_job(example("scram-auth.yaml"), settings)
    env = container(job)["env"]
    assert [e["name"] for e in env] == ["POD_NAME", "AWS_REGION", "API_TOKEN", "KAFKA_SASL_PASSWORD"]
    assert env[2] == {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "importer", "key": "token"}}}
    # Kubernetes reads a Secret's key only where exactly one of value and valueFrom is given.
    assert all(("value" in e) != ("valueFrom" in e) for e in env)


def test_active_deadline_seconds_reaches_the_job_only_when_set() -> None:
    assert "activeDeadlineSeconds" not in render_job(example("import.yaml"), SETTINGS)["spec"]
    limited = render_job(example("import.yaml", activeDeadlineSeconds=7200), SETTINGS)["spec"]
    assert limited["activeDeadlineSeconds"] == 7200


def test_workers_run_as_the_irsa_service_account_without_a_kubernetes_token() -> None:
    default = pod_spec(render_job(example("import.yaml"), SETTINGS))
    assert default["serviceAccountName"] == "csvkafka-worker"
    assert default["automountServiceAccountToken"] is False
    own = pod_spec(render_job(example("import.yaml", serviceAccountName="team-a-importer"), SETTINGS))
    assert own["serviceAccountName"] == "team-a-importer"
    assert container(render_job(example("import.yaml"), SETTINGS))["image"] == "registry.example/csvkafka:1.2.3"


def test_suspend_and_the_ttl_reach_the_job() -> None:
    assert render_job(example("import.yaml"), SETTINGS)["spec"]["suspend"] is False
    suspended = render_job(example("import.yaml", suspend=True), SETTINGS)["spec"]
    assert suspended["suspend"] is True
    assert suspended["ttlSecondsAfterFinished"] == 600


def test_rendering_is_pure() -> None:
    resource = example("spot-parallel.yaml")
    assert render_job(resource, SETTINGS) == render_job(resource, SETTINGS)


def worker_env_through_the_chart(env: Any) -> list[dict[str, Any]]:
    """worker.env as the chart hands it to the operator, and the operator to each Job."""
    [deployment] = of_kind(render({"worker": {"env": env}}), "Deployment")
    operator_env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    settings = Settings.from_env({"CSVKAFKA_WORKER_ENV": operator_env["CSVKAFKA_WORKER_ENV"]})
    return list(container(render_job(example("import.yaml"), settings))["env"][1:])


def test_the_charts_worker_env_reaches_the_job_with_secrets_as_references() -> None:
    entries = [{"name": "AWS_REGION", "value": "eu-west-1"},
               {"name": "HTTPS_PROXY", "valueFrom": {"secretKeyRef": {"name": "egress-proxy", "key": "url"}}}]
    assert worker_env_through_the_chart(entries) == entries
    # The former map form: plain values, in name order.
    assert worker_env_through_the_chart({"B": "2", "A": "1"}) == [{"name": "A", "value": "1"},
                                                                   {"name": "B", "value": "2"}]
    assert worker_env_through_the_chart([]) == []


def test_the_chart_refuses_an_env_entry_with_both_a_value_and_a_reference() -> None:
    error = render_error({"worker": {"env": [{"name": "T", "value": "x",
                                              "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}})
    assert "/worker/env/0" in error
