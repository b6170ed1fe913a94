"""The CRD is the schema's source of truth: the operator's model must say exactly what it says."""

from __future__ import annotations

import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from csvkafka_operator.models import (
    Condition,
    CsvKafkaImport,
    ImportStatus,
    InvalidResource,
    ResourceSpec,
    ShardStatus,
)

REPO = Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((REPO / "crds" / "csvkafka.io_csvkafkaimports.yaml").read_text())
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
# Only in the worker's spec: a resource never carries a password, it names a Secret instead.
NOT_IN_CRD = {"sink.auth.password"}


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation like `X`, `X | None` or `tuple[X, ...]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, tuple):
        found = [m for m in map(model_of, typing.get_args(annotation)) if m is not None]
        return found[0] if found else None
    return None


def walk(model: type[BaseModel], schema: dict[str, Any], path: str) -> list[tuple[str, type[BaseModel], Any, Any]]:
    """(path, model, field name, schema) for every field, recursing into nested objects."""
    fields = {(info.alias or name): name for name, info in model.model_fields.items()}
    properties = schema.get("properties") or schema.get("items", {}).get("properties", {})
    missing_in_model = set(properties) - set(fields)
    missing_in_crd = {f"{path}{alias}" for alias in fields if alias not in properties} - NOT_IN_CRD
    assert not missing_in_model, f"CRD fields without a model field at {path or 'top'}: {missing_in_model}"
    assert not missing_in_crd, f"model fields missing from the CRD: {missing_in_crd}"
    found = []
    for alias, prop in properties.items():
        name = fields[alias]
        found.append((f"{path}{alias}", model, name, prop))
        nested = model_of(model.model_fields[name].annotation)
        if nested is not None:
            found += walk(nested, prop, f"{path}{alias}.")
    return found


@pytest.mark.parametrize(("model", "schema"), [
    (ResourceSpec, SCHEMA["spec"]),
    (ImportStatus, SCHEMA["status"]),
    (ShardStatus, SCHEMA["status"]["properties"]["shards"]),
    (Condition, SCHEMA["status"]["properties"]["conditions"]),
])
def test_the_model_and_the_crd_name_the_same_fields(model: type[BaseModel], schema: dict[str, Any]) -> None:
    assert walk(model, schema, "")


def test_every_crd_default_is_the_model_default() -> None:
    checked = 0
    for path, model, name, prop in walk(ResourceSpec, SCHEMA["spec"], ""):
        if "default" not in prop:
            continue
        info = model.model_fields[name]
        ours = info.get_default(call_default_factory=True)
        nested = model_of(info.annotation)
        theirs = nested.model_validate(prop["default"]) if nested is not None else prop["default"]
        assert (ours.value if isinstance(ours, Enum) else ours) == theirs, path
        checked += 1
    assert checked >= 20


def test_crd_enums_are_the_model_enums() -> None:
    for path, model, name, prop in walk(ResourceSpec, SCHEMA["spec"], ""):
        annotation = model.model_fields[name].annotation
        if "enum" in prop and isinstance(annotation, type) and issubclass(annotation, Enum):
            assert prop["enum"] == [member.value for member in annotation], path


@pytest.mark.parametrize("example", sorted((REPO / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_is_a_valid_import(example: Path) -> None:
    body = yaml.safe_load(example.read_text())
    body["metadata"] |= {"namespace": "default", "uid": "0"}
    assert CsvKafkaImport.from_body(body).spec.checkpoint.table


def test_the_local_example_sets_only_the_four_required_fields() -> None:
    spec = yaml.safe_load((REPO / "examples" / "import.yaml").read_text())["spec"]
    assert spec == {"source": {"uri": spec["source"]["uri"]},
                    "sink": {"bootstrapServers": spec["sink"]["bootstrapServers"], "topic": spec["sink"]["topic"]},
                    "checkpoint": {"table": spec["checkpoint"]["table"]}}


def test_scram_without_a_secret_is_refused_with_the_field_named() -> None:
    body = {"metadata": {"name": "x", "namespace": "n", "uid": "u"},
            "spec": {"source": {"uri": "s3://bucket/key.csv"}, "checkpoint": {"table": "checkpoints"},
                     "sink": {"bootstrapServers": "b:9092", "topic": "t",
                              "auth": {"mechanism": "scram-sha-512", "username": "u"}}}}
    with pytest.raises(InvalidResource, match=r"^spec\.sink\.auth: .*needs a username and a secretRef"):
        CsvKafkaImport.from_body(body)


@pytest.mark.parametrize("auth", [{"caConfigMapRef": {"name": "ca"}},
                                  {"tls": True, "caFile": "/etc/ca.pem", "caConfigMapRef": {"name": "ca"}}])
def test_a_ca_configmap_needs_tls_and_no_ca_file(auth: dict[str, object]) -> None:
    body = {"metadata": {"name": "x", "namespace": "n", "uid": "u"},
            "spec": {"source": {"uri": "s3://bucket/key.csv"}, "checkpoint": {"table": "checkpoints"},
                     "sink": {"bootstrapServers": "b:9092", "topic": "t", "auth": auth}}}
    with pytest.raises(InvalidResource, match=r"^spec\.sink\.auth: .*caConfigMapRef needs tls: true and no caFile"):
        CsvKafkaImport.from_body(body)


def many_objects(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "x", "namespace": "n", "uid": "u"},
            "spec": {"source": {"uri": "s3://bucket/exports/"}, "checkpoint": {"table": "checkpoints"},
                     "sink": {"bootstrapServers": "b:9092", "topic": "t"}, **spec}}


@pytest.mark.parametrize("row", [1, 7])
def test_a_row_to_restart_from_needs_a_single_object(row: int) -> None:
    with pytest.raises(InvalidResource, match=r"^spec: restart.fromRow needs a single-object source: .* is mode all"):
        CsvKafkaImport.from_body(many_objects(restart={"id": "1", "fromRow": row}))
    assert CsvKafkaImport.from_body(many_objects(restart={"id": "1"})).spec.restart


@pytest.mark.parametrize(("source", "text"), [
    ({"uri": "s3://bucket/exports/*.csv"}, "s3://bucket/exports/*.csv"),
    ({"uris": ["s3://bucket/a.csv"]}, "s3://bucket/a.csv"),
    ({"uris": ["s3://bucket/a.csv", "s3://bucket/b.csv", "s3://bucket/c.csv"]},
     "s3://bucket/a.csv and 2 more objects of source.uris"),
])
def test_the_source_reads_as_one_phrase(source: dict[str, Any], text: str) -> None:
    assert CsvKafkaImport.from_body(many_objects(source=source)).spec.source_text() == text
