"""The operator's checkpoint reads shared across imports, and its request counters."""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse

from csvkafka_operator.checkpoints import SharedReads
from csvkafka_operator.counters import DYNAMODB, KUBERNETES, Requests, count_dynamodb, count_kubernetes
from csvkafka_worker.checkpoint import Checkpoint, to_item


class FakeDynamoDB:
    def __init__(self, items: dict[str, Checkpoint], fail: bool = False) -> None:
        self.items = items
        self.fail = fail
        self.calls: list[tuple[str, list[str]]] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        [(table, request)] = RequestItems.items()
        ids = [key["job_id"]["S"] for key in request["Keys"]]
        assert len(ids) <= 100
        self.calls.append((table, ids))
        if self.fail:
            raise RuntimeError("DynamoDB is down")
        return {"Responses": {table: [to_item(self.items[i]) for i in ids if i in self.items]}}


def read_at_once(reads: SharedReads, requests: list[tuple[str, list[str]]]) -> list[Any]:
    results: list[Any] = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def one(index: int) -> None:
        start.wait()
        try:
            results[index] = reads.read(*requests[index])
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_reads_of_one_table_at_the_same_time_go_out_as_one_batch_and_each_gets_its_own_items() -> None:
    items = {f"job-{i}": Checkpoint(job_id=f"job-{i}", last_line=i) for i in range(20)}
    dynamodb = FakeDynamoDB(items)
    reads = SharedReads(dynamodb, window=0.3)
    results = read_at_once(reads, [("t", [f"job-{i}", "missing"]) for i in range(20)])
    assert [sorted(r) for r in results] == [[f"job-{i}"] for i in range(20)]
    assert [r[f"job-{i}"].last_line for i, r in enumerate(results)] == list(range(20))
    [(table, ids)] = dynamodb.calls
    assert table == "t" and sorted(ids) == sorted([*items, "missing"])


def test_a_batch_never_asks_for_more_than_100_items_and_tables_are_read_apart() -> None:
    dynamodb = FakeDynamoDB({})
    reads = SharedReads(dynamodb, window=0.3)
    read_at_once(reads, [("t", [f"a-{i}-{j}" for j in range(40)]) for i in range(5)] + [("u", ["x"])])
    assert sorted(len(ids) for table, ids in dynamodb.calls if table == "t") == [40, 80, 80]
    assert [ids for table, ids in dynamodb.calls if table == "u"] == [["x"]]


def test_a_failed_batch_fails_every_read_in_it() -> None:
    reads = SharedReads(FakeDynamoDB({}, fail=True), window=0.3)
    results = read_at_once(reads, [("t", ["a"]), ("t", ["b"])])
    assert [str(r) for r in results] == ["DynamoDB is down"] * 2


def test_every_kubernetes_call_is_counted() -> None:
    class Api:
        def call_api(self, path: str, method: str, **_: Any) -> str:
            return f"{method} {path}"

    api, requests = Api(), Requests()
    count_kubernetes(api, requests)
    assert api.call_api("/apis", "GET") == "GET /apis"
    api.call_api("/api", "GET")
    assert requests.snapshot() == {KUBERNETES: 2, DYNAMODB: 0}


def test_every_dynamodb_request_sent_is_counted() -> None:
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
                          aws_access_key_id="test", aws_secret_access_key="test")
    requests = Requests()
    count_dynamodb(client, requests)

    class Raw:
        def stream(self, **_: Any) -> Any:
            yield b"{}"

    # Answers in place of the network, after the counter has seen the request.
    client.meta.events.register("before-send.dynamodb",
                                lambda request, **_: AWSResponse(request.url, 200, {}, Raw()))
    client.get_item(TableName="t", Key={"job_id": {"S": "a"}})
    client.batch_get_item(RequestItems={"t": {"Keys": [{"job_id": {"S": "a"}}]}})
    assert requests.snapshot()[DYNAMODB] == 2
