"""The Argo CD health check of CsvKafkaImport, run as Argo CD runs it: Lua 5.1 (Argo's gopher-lua
speaks 5.1), the resource as the global `obj`, the returned table's status and message compared with
health_test.yaml, which is Argo CD's own test format for bundled resource customizations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa.lua51 as lua51
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "argocd" / "resource_customizations" / "csvkafka.io" / "CsvKafkaImport"
CASES = yaml.safe_load((CHECK / "health_test.yaml").read_text())["tests"]
PHASES = {"Progressing", "Suspended", "Degraded", "Healthy"}


def health(obj: dict[str, Any]) -> dict[str, str]:
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    result: Any = runtime.execute((CHECK / "health.lua").read_text())  # a Lua table
    return {key: result[key] for key in ("status", "message") if result[key] is not None}


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_health_of_fixture(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((CHECK / case["inputPath"]).read_text())
    assert health(obj) == case["healthStatus"]


def test_every_phase_is_covered() -> None:
    assert {case["healthStatus"]["status"] for case in CASES} == PHASES


def test_every_fixture_is_used() -> None:
    assert sorted(p.name for p in (CHECK / "testdata").iterdir()) == sorted(
        Path(case["inputPath"]).name for case in CASES)


def test_argocd_cm_carries_the_same_lua() -> None:
    snippet = yaml.safe_load((ROOT / "argocd" / "argocd-cm.yaml").read_text())
    assert snippet["data"]["resource.customizations.health.csvkafka.io_CsvKafkaImport"] == (
        CHECK / "health.lua").read_text()


def test_failed_import_without_message_fields_still_has_a_status() -> None:
    # The Lua must never error: Argo CD turns a script error into an Unknown health for the whole app.
    obj = {"metadata": {"generation": 1}, "spec": {},
           "status": {"observedGeneration": 1, "conditions": [{"type": "Failed", "status": "True",
                                                              "reason": "BadInput", "message": ""}]}}
    assert health(obj) == {"status": "Degraded", "message": "BadInput: "}
