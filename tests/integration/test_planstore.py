"""Listing a multi-object source on the stack's S3, and its plan in the stack's DynamoDB table."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from csvkafka_worker.errors import BadInput, Infrastructure, Reason
from csvkafka_worker.listing import list_objects, list_patterns, parse_source
from csvkafka_worker.plan import ObjectEntry
from csvkafka_worker.planstore import PlanState, PlanStore
from csvkafka_worker.retry import Backoff, Retrier, Service
from csvkafka_worker.spec import SourceSpec
from tests.conftest import unique_name

pytestmark = pytest.mark.integration

KEYS = [f"data/2024/{i % 3 + 1:02}/k{i:04}.csv" for i in range(2500)]
EXTRA = {"data/empty.csv": b"", "data/2024/": b"", "data/2024/01/notes.txt": b"notes", "g/a.csv": b"", "g/b.txt": b"",
         "g/x/a.csv": b"", "g/x/y/a.csv": b""}
S3_RETRIES = Retrier(Service.S3, Backoff(budget=20))
DB_RETRIES = Retrier(Service.DYNAMODB, Backoff(budget=20))


def body(key: str) -> bytes:
    return f"id,key\n1,{key}\n".encode()


@pytest.fixture(scope="module")
def bucket(s3: Any) -> Iterator[str]:
    """2,500 CSV objects in three folders, a folder marker, an empty object and a few others."""
    name = unique_name("listing")
    s3.create_bucket(Bucket=name)
    objects = {**{key: body(key) for key in KEYS}, **EXTRA}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda item: s3.put_object(Bucket=name, Key=item[0], Body=item[1]), objects.items()))
    yield name
    keys = list(objects)
    for at in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=name, Delete={"Objects": [{"Key": key} for key in keys[at:at + 1000]]})
    s3.delete_bucket(Bucket=name)


class CountingS3:
    """The stack's S3 client, counting the listing calls made through it."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3
        self.lists = 0

    def list_objects_v2(self, **kwargs: Any) -> Any:
        self.lists += 1
        return self._s3.list_objects_v2(**kwargs)

    def head_object(self, **kwargs: Any) -> Any:
        return self._s3.head_object(**kwargs)


def keys_of(s3: Any, uri: str, include: tuple[str, ...] = (), exclude: tuple[str, ...] = (),
            after: datetime | None = None) -> list[str]:
    return [e.key for e in list_patterns(s3, [parse_source(uri)], include, exclude, after, S3_RETRIES)]


def test_a_prefix_is_listed_page_by_page(s3: Any, bucket: str) -> None:
    counting = CountingS3(s3)
    found = list_patterns(counting, [parse_source(f"s3://{bucket}/data/")], (), (), None, S3_RETRIES)
    first = next(found)
    assert counting.lists == 1, "the first object comes before the other pages are asked for"
    entries = [first, *found]
    assert counting.lists == 3  # 1000 keys a page
    assert [e.key for e in entries] == sorted([*KEYS, "data/empty.csv", "data/2024/01/notes.txt"])
    by_key = {e.key: e for e in entries}
    assert by_key["data/empty.csv"].size == 0, "an empty object is an object; a folder marker is not"
    some = by_key[KEYS[7]]
    assert (some.bucket, some.size, some.etag) == (bucket, len(body(KEYS[7])), hashlib.md5(body(KEYS[7])).hexdigest())
    assert some.last_modified.tzinfo is not None


def test_globs(s3: Any, bucket: str) -> None:
    assert keys_of(s3, f"s3://{bucket}/data/**/k00?0.csv") == sorted(f"data/2024/{i % 3 + 1:02}/k00{i // 10}0.csv"
                                                                     for i in range(0, 100, 10))
    assert len(keys_of(s3, f"s3://{bucket}/data/2024/0[!2]/*.csv")) == 1667
    assert keys_of(s3, f"s3://{bucket}/g/*.csv") == ["g/a.csv"], "* stays within one segment"
    assert keys_of(s3, f"s3://{bucket}/g/**/a.csv") == ["g/a.csv", "g/x/a.csv", "g/x/y/a.csv"], "** may be none"
    assert keys_of(s3, f"s3://{bucket}/g/x/**") == ["g/x/a.csv", "g/x/y/a.csv"]


def test_include_and_exclude(s3: Any, bucket: str) -> None:
    found = keys_of(s3, f"s3://{bucket}/data/", include=("*.csv",), exclude=("k1*", "empty.csv"))
    assert found == sorted(k for k in KEYS if not k.rpartition("/")[2].startswith("k1"))
    assert keys_of(s3, f"s3://{bucket}/data/", include=("data/2024/02/*",)) == sorted(k for k in KEYS if "/02/" in k)


def test_modified_after(s3: Any, s3_bucket: str) -> None:
    s3.put_object(Bucket=s3_bucket, Key="in/old.csv", Body=b"a\n")
    old = s3.head_object(Bucket=s3_bucket, Key="in/old.csv")["LastModified"]
    time.sleep(1.1)
    s3.put_object(Bucket=s3_bucket, Key="in/new.csv", Body=b"b\n")
    uri = f"s3://{s3_bucket}/in/"
    assert keys_of(s3, uri, after=old) == ["in/new.csv"], "an object modified at that time is left out"
    assert keys_of(s3, uri, after=old.replace(tzinfo=None)) == ["in/new.csv"], "a time without a zone is UTC"
    assert keys_of(s3, uri, after=old.replace(year=old.year - 1)) == ["in/new.csv", "in/old.csv"]


def test_a_source_spec_with_a_list_of_objects(s3: Any, bucket: str) -> None:
    source = SourceSpec(uris=(f"s3://{bucket}/{KEYS[5]}", f"s3://{bucket}/data/empty.csv", f"s3://{bucket}/{KEYS[1]}"))
    assert [e.key for e in list_objects(s3, source, S3_RETRIES)] == [KEYS[5], "data/empty.csv", KEYS[1]]
    source = SourceSpec(uri=f"s3://{bucket}/data/2024/01/", include=("*.txt",))
    assert [e.key for e in list_objects(s3, source, S3_RETRIES)] == ["data/2024/01/notes.txt"]
    missing = SourceSpec(uris=(f"s3://{bucket}/{KEYS[0]}", f"s3://{bucket}/data/nope.csv"))
    with pytest.raises(BadInput, match=rf"source object s3://{bucket}/data/nope.csv does not exist") as error:
        list(list_objects(s3, missing, S3_RETRIES))
    assert error.value.reason is Reason.SOURCE_NOT_FOUND


def test_a_missing_bucket_is_named(s3: Any) -> None:
    with pytest.raises(BadInput, match=r"bucket 'no-such-bucket-x1' of source s3://no-such-bucket-x1/data/ does not "
                                       r"exist; check the bucket name") as error:
        list(list_patterns(s3, [parse_source("s3://no-such-bucket-x1/data/")], (), (), None, S3_RETRIES))
    assert error.value.reason is Reason.SOURCE_NOT_FOUND


def test_the_plan_is_listed_once_by_one_of_two_workers(s3: Any, bucket: str, dynamodb: Any,
                                                      checkpoint_table: str) -> None:
    calls: list[str] = []

    def lister() -> Iterator[ObjectEntry]:
        calls.append(threading.current_thread().name)
        return list_patterns(s3, [parse_source(f"s3://{bucket}/data/")], (), (), None, S3_RETRIES)

    stores = [PlanStore(dynamodb, checkpoint_table, "job-a", DB_RETRIES, poll_seconds=0.2) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        headers = list(pool.map(lambda store: store.ensure("initial", lister, 120), stores))
    assert len(calls) == 1
    assert headers[0] == headers[1]
    header = headers[0]
    assert (header.run_id, header.state, header.objects, header.pages) == ("initial", PlanState.COMPLETE, 2502, 3)
    assert header.total_bytes == sum(len(body(k)) for k in KEYS) + len(b"notes")
    listed = list(list_patterns(s3, [parse_source(f"s3://{bucket}/data/")], (), (), None, S3_RETRIES))
    assert list(stores[1].entries()) == listed
    # Once complete, a later worker reads it without listing.
    assert stores[0].ensure("initial", lister, 1) == header and len(calls) == 1


def entries(n: int, prefix: str, key_bytes: int = 20) -> list[ObjectEntry]:
    when = datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
    return [ObjectEntry("bkt", f"{prefix}{i:05}".ljust(key_bytes, "é")[:key_bytes], i, f"etag{i}", when)
            for i in range(n)]


def test_long_keys_fit_in_pages(dynamodb: Any, checkpoint_table: str) -> None:
    # 1024-byte keys of characters that JSON escapes (6 bytes each) and of 2-byte UTF-8 ones.
    plan = [ObjectEntry("b", "\x01" * 1024, 1, "e", datetime(2026, 1, 1, tzinfo=UTC)),
            *entries(1500, "long/", key_bytes=512)]
    store = PlanStore(dynamodb, checkpoint_table, "job-long", DB_RETRIES)
    header = store.ensure("initial", lambda: iter(plan), 60)
    assert header.objects == 1501 and header.pages > 2
    assert list(store.entries()) == plan
    for n in range(header.pages):
        item = dynamodb.get_item(TableName=checkpoint_table, Key={"job_id": {"S": f"job-long!plan!{n}"}})["Item"]
        assert len(item["entries"]["B"]) < 300_000


def test_a_new_run_replaces_the_plan_and_delete_removes_it(dynamodb: Any, checkpoint_table: str) -> None:
    store = PlanStore(dynamodb, checkpoint_table, "job-r", DB_RETRIES)
    first = store.ensure("initial", lambda: iter(entries(2500, "first/")), 60)
    assert first.pages == 3
    again = store.ensure("rerun-2", lambda: iter(entries(10, "second/")), 60)
    assert (again.run_id, again.objects, again.pages, again.extent) == ("rerun-2", 10, 1, 3)
    assert list(store.entries()) == entries(10, "second/")
    assert store.header() == again
    nothing = store.ensure("rerun-3", lambda: iter(()), 60)
    assert (nothing.objects, nothing.total_bytes, nothing.pages, nothing.extent) == (0, 0, 0, 3)
    assert list(store.entries()) == []
    store.delete()
    assert store.header() is None
    left = dynamodb.scan(TableName=checkpoint_table)["Items"]
    assert [i["job_id"]["S"] for i in left if i["job_id"]["S"].startswith("job-r!")] == []


def test_a_listing_that_failed_is_taken_over_at_once(dynamodb: Any, checkpoint_table: str) -> None:
    def broken() -> Iterator[ObjectEntry]:
        yield from entries(3, "a/")
        raise BadInput("bucket gone", reason=Reason.SOURCE_NOT_FOUND)

    store = PlanStore(dynamodb, checkpoint_table, "job-f", DB_RETRIES, lease_seconds=600)
    with pytest.raises(BadInput, match="bucket gone"):
        store.ensure("initial", broken, 60)
    started = time.monotonic()
    header = store.ensure("initial", lambda: iter(entries(4, "b/")), 60)
    assert header.objects == 4 and time.monotonic() - started < 10


def test_a_worker_stuck_listing_is_taken_over_and_cannot_overwrite_the_plan(dynamodb: Any,
                                                                            checkpoint_table: str) -> None:
    resume = threading.Event()

    def stuck() -> Iterator[ObjectEntry]:
        yield from entries(5, "stuck/")
        resume.wait(60)  # no lease renewal meanwhile, as in a worker frozen or cut off
        yield from entries(6, "stuck/")

    slow = PlanStore(dynamodb, checkpoint_table, "job-t", DB_RETRIES, lease_seconds=1.0, poll_seconds=0.2)
    other = PlanStore(dynamodb, checkpoint_table, "job-t", DB_RETRIES, lease_seconds=1.0, poll_seconds=0.2)
    with ThreadPoolExecutor(1) as pool:
        stuck_result = pool.submit(slow.ensure, "initial", stuck, 60)
        while other.header() is None:
            time.sleep(0.05)
        taken = other.ensure("initial", lambda: iter(entries(7, "other/")), 60)
        resume.set()
        assert stuck_result.result(60) == taken, "the stuck worker, back, uses the plan made meanwhile"
    assert taken.objects == 7
    assert list(other.entries()) == entries(7, "other/")


def test_waiting_for_another_workers_listing_is_bounded(dynamodb: Any, checkpoint_table: str) -> None:
    resume = threading.Event()

    def slow() -> Iterator[ObjectEntry]:
        resume.wait(60)
        yield from entries(2, "slow/")

    maker = PlanStore(dynamodb, checkpoint_table, "job-w", DB_RETRIES, owner="maker-pod", lease_seconds=600)
    waiter = PlanStore(dynamodb, checkpoint_table, "job-w", DB_RETRIES, poll_seconds=0.2)
    with ThreadPoolExecutor(1) as pool:
        made = pool.submit(maker.ensure, "initial", slow, 60)
        while waiter.header() is None:
            time.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(Infrastructure, match=r"still being listed by maker-pod after 1s") as error:
            waiter.ensure("initial", lambda: iter(entries(1, "never/")), 1)
        assert time.monotonic() - started < 5 and error.value.reason is Reason.S3_UNAVAILABLE
        resume.set()
        assert made.result(60).objects == 2
