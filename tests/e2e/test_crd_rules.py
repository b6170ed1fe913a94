"""The CRD's rules for many objects, as the stack's API server applies them: each refusal is one readable line.

The CRD is installed under a group of its own (same schema, other name), so that this runs beside the
operator's imports without touching the real CRD.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CRD = Path(__file__).resolve().parents[2] / "crds" / "csvkafka.io_csvkafkaimports.yaml"
BASE = {"sink": {"bootstrapServers": "b:9092", "topic": "t"}, "checkpoint": {"table": "checkpoints"}}


def kubectl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, check=False, timeout=60)


@pytest.fixture(scope="module")
def group(stack_env: dict[str, str]) -> Iterator[str]:
    group = f"rules-{uuid.uuid4().hex[:8]}.csvkafka.example"
    crd = yaml.safe_load(CRD.read_text())
    crd["metadata"]["name"] = f"csvimports.{group}"
    crd["spec"]["group"] = group
    crd["spec"]["names"] |= {"shortNames": [], "categories": []}
    assert kubectl("apply", "-f", "-", stdin=yaml.safe_dump(crd)).returncode == 0
    assert kubectl("wait", "--for=condition=Established", f"crd/csvimports.{group}", "--timeout=30s").returncode == 0
    yield group
    kubectl("delete", "crd", f"csvimports.{group}", "--wait=false")


def manifest(group: str, name: str, **spec: Any) -> str:
    return yaml.safe_dump({"apiVersion": f"{group}/v1alpha1", "kind": "CsvKafkaImport",
                           "metadata": {"name": name, "namespace": "default"}, "spec": {**BASE, **spec}})


def create(group: str, **spec: Any) -> subprocess.CompletedProcess[str]:
    return kubectl("create", "--dry-run=server", "-f", "-", stdin=manifest(group, "dry", **spec))


@pytest.mark.parametrize("source", [{"uri": "s3://exports/2026-11/"}, {"uri": "s3://exports/**/part-*.csv.gz"},
                                    {"uris": ["s3://exports/a.csv", "s3://exports/b.csv"]},
                                    {"uri": "s3://exports/2026/", "include": ["*.csv"], "exclude": ["tmp-*"],
                                     "modifiedAfter": "2026-11-01T00:00:00Z", "csv": {"expectedHeader": ["id"]}}])
def test_each_form_of_source_is_accepted(group: str, source: dict[str, Any]) -> None:
    created = create(group, source=source)
    assert created.returncode == 0, created.stderr


@pytest.mark.parametrize(("spec", "message"), [
    ({"source": {}}, "set exactly one of source.uri (an object, a prefix/ or a glob) and source.uris"),
    ({"source": {"uri": "s3://exports/a.csv", "uris": ["s3://exports/b.csv"]}}, "set exactly one of source.uri"),
    ({"source": {"uris": ["s3://exports/2026/"]}}, "each source.uris item must be s3://bucket/key of one object"),
    ({"source": {"uris": ["s3://exports/*.csv"]}}, "no glob (*, ?, [)"),
    ({"source": {"uris": ["s3://exports/a.csv", "s3://exports/a.csv"]}}, 'Duplicate value: "s3://exports/a.csv"'),
    ({"source": {"uri": "s3://exports/", "csv": {"header": False, "columns": ["a"], "expectedHeader": ["a"]}}},
     "csv.expectedHeader is checked against each object's header row; it needs csv.header true"),
    ({"source": {"uri": "s3://exports/"}, "rateLimit": {"rowsPerSecond": 0}},
     "spec.rateLimit.rowsPerSecond in body should be greater than 0"),
    ({"source": {"uri": "s3://exports/"}, "receipts": {"manifestUri": "s3://exports/manifests/"}},
     "receipts.manifestUri must be s3://bucket/key of the manifest object"),
    ({"source": {"uri": "s3://exports/"}, "receipts": {"topic": "t"}},
     "receipts.topic must differ from sink.topic and badRows.deadLetterTopic"),
    ({"source": {"uri": "s3://exports/"}, "rerun": {"mode": "sometimes"}}, 'supported values: "new", "changed", "all"'),
    ({"source": {"uri": "s3://exports/"}, "onObjectError": "retry"}, 'supported values: "fail", "skip"'),
    *(({"source": source, "restart": {"id": "1", "fromRow": 1}}, "restart.fromRow needs a single-object source")
      for source in ({"uri": "s3://exports/2026/"}, {"uri": "s3://exports/*.csv"}, {"uris": ["s3://exports/a.csv"]},
                     {"uri": "s3://exports/a.csv", "exclude": ["b*"]},
                     {"uri": "s3://exports/a.csv", "modifiedAfter": "2026-11-01T00:00:00Z"})),
])
def test_a_source_or_setting_that_cannot_work_is_refused_with_a_readable_message(
        group: str, spec: dict[str, Any], message: str) -> None:
    refused = create(group, **spec)
    assert refused.returncode != 0
    assert message in refused.stderr


def test_one_object_restarts_from_a_row(group: str) -> None:
    created = create(group, source={"uri": "s3://exports/a.csv", "include": []}, restart={"id": "1", "fromRow": 9})
    assert created.returncode == 0, created.stderr


def replace(group: str, name: str, **spec: Any) -> subprocess.CompletedProcess[str]:
    return kubectl("replace", "--dry-run=server", "-f", "-", stdin=manifest(group, name, **spec))


@pytest.fixture
def existing(group: str) -> Iterator[str]:
    """The name of an import to replace; its spec is set by the test (kubectl replace of a created one)."""
    name = f"it-{uuid.uuid4().hex[:6]}"
    yield name
    kubectl("delete", f"csvimports.{group}", name, "-n", "default", "--wait=false")


@pytest.mark.parametrize("many", [True, False], ids=["many-objects", "one-object"])
def test_parallelism_changes_with_a_reset_only(group: str, existing: str, many: bool) -> None:
    source = {"uri": "s3://exports/2026-11/" if many else "s3://exports/a.csv"}
    assert kubectl("create", "-f", "-", stdin=manifest(group, existing, source=source)).returncode == 0
    refused = replace(group, existing, source=source, parallelism=4, rerun={"id": "1", "mode": "changed"})
    assert "parallelism can only change together with a reset" in refused.stderr
    assert (replace(group, existing, source=source, parallelism=4, rerun={"id": "1", "mode": "all"}).returncode
            == 0) is many
    assert (replace(group, existing, source=source, parallelism=4, restart={"id": "1", "fromRow": 1}).returncode
            == 0) is not many


def test_a_rerun_is_applied_once_per_id_and_its_id_stays(group: str, existing: str) -> None:
    source = {"uri": "s3://exports/2026-11/"}
    created = kubectl("create", "-f", "-", stdin=manifest(group, existing, source=source, rerun={"id": "1"}))
    assert created.returncode == 0
    assert replace(group, existing, source=source, rerun={"id": "2", "mode": "changed"}).returncode == 0
    assert "change rerun.id to run again; a rerun (its mode included) is applied once per id" in replace(
        group, existing, source=source, rerun={"id": "1", "mode": "all"}).stderr
    assert "rerun.id cannot be removed (it names the current run)" in replace(group, existing, source=source).stderr
    assert "source is immutable" in replace(group, existing, source={"uri": "s3://exports/2026-12/"},
                                            rerun={"id": "1"}).stderr
