"""The per-namespace cap on worker pods: what a Job holds, who starts, who waits, and in what order."""

from __future__ import annotations

from typing import Any

import pytest

from csvkafka_operator.capacity import RECOUNT_SECONDS, PodCap, pods_held
from csvkafka_operator.settings import Settings, SettingsError

NS = "data"


def job(name: str, parallelism: int = 1, *, ended: str | None = None, suspend: bool = False,
        namespace: str = NS) -> dict[str, Any]:
    conditions = [{"type": ended, "status": "True"}] if ended else []
    return {"metadata": {"name": name, "namespace": namespace},
            "spec": {"parallelism": parallelism, "suspend": suspend}, "status": {"conditions": conditions}}


@pytest.mark.parametrize(("body", "held"), [
    (job("a", 4), 4),
    (job("a", 4, suspend=True), 0),
    (job("a", 4, ended="Complete"), 0),
    (job("a", 4, ended="FailureTarget"), 0),
    (job("a", 4, ended="SuccessCriteriaMet"), 0),
])
def test_an_active_job_holds_its_parallelism(body: dict[str, Any], held: int) -> None:
    assert pods_held(body) == held


def test_imports_over_the_cap_wait_and_start_in_queue_order_as_pods_free_up() -> None:
    cap = PodCap(3)
    cap.count(NS, [job("running-1"), job("running-2")])
    assert cap.admit(NS, "first", 1) is None  # 2 + 1 fits
    cap.observe(job("first-job"))
    why = cap.admit(NS, "second", 1)
    assert why is not None and "at the operator's cap of 3 per namespace" in why
    assert "CSVKAFKA_MAX_PODS_PER_NAMESPACE" in why and "operator.maxWorkerPodsPerNamespace" in why
    later = cap.admit(NS, "third", 1)
    assert later is not None
    assert cap.next_up(NS) == []
    cap.observe(job("running-1", ended="Complete"))
    assert cap.next_up(NS) == ["second"]
    # The third does not jump the queue while the second has not started; the words stay the same.
    assert cap.admit(NS, "third", 1) == later
    assert cap.admit(NS, "second", 1) is None
    cap.observe(job("second-job"))
    assert cap.admit(NS, "third", 1) is not None
    cap.observe(job("running-2"), deleted=True)
    assert cap.admit(NS, "third", 1) is None
    assert not cap.waiting(NS)


def test_an_import_wider_than_the_cap_runs_once_nothing_else_does() -> None:
    cap = PodCap(4)
    cap.count(NS, [job("small")])
    assert cap.admit(NS, "wide", 6) is not None
    cap.observe(job("small", ended="Failed"))
    assert cap.next_up(NS) == ["wide"]
    assert cap.admit(NS, "wide", 6) is None


def test_freed_pods_wake_as_many_queued_imports_as_fit() -> None:
    cap = PodCap(4)
    cap.count(NS, [job("big", 4)])
    for name in ("a", "b", "c"):
        assert cap.admit(NS, name, 2 if name == "b" else 1) is not None
    cap.observe(job("big", 4, ended="Complete"))
    assert cap.next_up(NS) == ["a", "b", "c"]
    cap.observe(job("other", 2))
    assert cap.next_up(NS) == ["a"]


def test_namespaces_have_caps_of_their_own_and_a_zero_cap_admits_everything() -> None:
    cap = PodCap(1)
    cap.count(NS, [job("x")])
    cap.count("other", [])
    assert cap.admit(NS, "a", 1) is not None
    assert cap.admit("other", "a", 1) is None
    unlimited = PodCap(0)
    unlimited.count(NS, [job("x", 50)])
    assert not unlimited.enabled and unlimited.admit(NS, "a", 10) is None


def test_an_import_that_leaves_the_queue_lets_the_next_one_go_first() -> None:
    cap = PodCap(1)
    cap.count(NS, [job("x")])
    cap.admit(NS, "a", 1)
    cap.admit(NS, "b", 1)
    cap.leave(NS, "a")
    cap.observe(job("x", ended="Complete"))
    assert cap.next_up(NS) == ["b"]


def test_an_import_that_needs_no_pods_never_waits() -> None:
    cap = PodCap(1)
    cap.count(NS, [job("x")])
    assert cap.admit(NS, "a", 1) is not None
    assert cap.admit(NS, "suspended", 0) is None
    assert cap.admit(NS, "a", 0) is None  # suspended while queued: its Job is created, suspended
    assert not cap.waiting(NS)


def test_the_count_is_listed_again_after_a_while() -> None:
    now = [0.0]
    cap = PodCap(2, clock=lambda: now[0])
    assert cap.needs_count(NS)
    cap.count(NS, [])
    assert not cap.needs_count(NS)
    now[0] = RECOUNT_SECONDS + 1
    assert cap.needs_count(NS)


def test_the_cap_is_an_operator_setting() -> None:
    assert Settings().max_worker_pods_per_namespace == 20
    settings = Settings.from_env({"CSVKAFKA_MAX_PODS_PER_NAMESPACE": "8", "CSVKAFKA_MAX_WORKERS": "4"})
    assert (settings.max_worker_pods_per_namespace, settings.max_workers) == (8, 4)
    with pytest.raises(SettingsError, match=r"CSVKAFKA_MAX_PODS_PER_NAMESPACE \(max_worker_pods_per_namespace\)"):
        Settings.from_env({"CSVKAFKA_MAX_PODS_PER_NAMESPACE": "-1"})
