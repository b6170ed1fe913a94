"""The loop of the system csvkafka replaces, as a benchmark contender.

smart_open iterates the object's lines (one sequential GET), each line is one `produce()` followed
by `poll(0)`, and every 50,000 lines a synchronous DynamoDB `put_item` records `last_line` and
`total_sent`. The producer keeps librdkafka's defaults, as the old scripts did. Like the old
system it sends physical lines, so a quoted field with a newline inside becomes two messages.

    python -m bench.naive --source s3://bucket/key --topic T --table TABLE --job-id J
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import boto3
import smart_open
from confluent_kafka import Producer

CHECKPOINT_EVERY = 50_000


def checkpoint(dynamodb: object, table: str, job_id: str, lines: int) -> None:
    dynamodb.put_item(TableName=table, Item={  # type: ignore[attr-defined]
        "job_id": {"S": job_id}, "last_line": {"N": str(lines)}, "total_sent": {"N": str(lines)},
        "timestamp": {"N": str(int(time.time()))}})


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.naive")
    parser.add_argument("--source", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--job-id", required=True)
    parser.add_argument("--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "10.88.0.1:9092"))
    args = parser.parse_args()

    producer = Producer({"bootstrap.servers": args.bootstrap_servers})
    dynamodb = boto3.client("dynamodb")
    s3 = boto3.client("s3")
    sent = 0
    with smart_open.open(args.source, "r", encoding="utf-8", transport_params={"client": s3}) as lines:
        next(lines)  # header
        for line in lines:
            while True:
                try:
                    producer.produce(args.topic, line.rstrip("\n"))
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
            sent += 1
            if sent % CHECKPOINT_EVERY == 0:
                checkpoint(dynamodb, args.table, args.job_id, sent)
    remaining = producer.flush(300)
    checkpoint(dynamodb, args.table, args.job_id, sent)
    print(f"sent {sent} lines, {remaining} undelivered", file=sys.stderr)
    return 1 if remaining else 0


if __name__ == "__main__":
    sys.exit(main())
