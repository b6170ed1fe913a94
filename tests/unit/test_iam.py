"""The stack's IAM evaluation (devstack.iam) and the permissions each AWS call needs (devstack.permissions)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from moto.iam.access_control import IAMPolicy, PermissionResult

from devstack.iam import Decision, Request, UnsupportedPolicy, decide, denial, matches
from devstack.permissions import Call, Unmapped, required

TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/checkpoints"
KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-0000-0000-0000-000000000000"
VIA_DYNAMODB = {"kms:ViaService": "dynamodb.us-east-1.amazonaws.com"}


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


@pytest.mark.parametrize(("wildcard", "value", "expected"), [
    ("s3:Get*", "s3:GetObject", True),
    ("s3:Get*", "s3:PutObject", False),
    ("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/dir/key.csv", True),
    ("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket", False),
    ("arn:aws:s3:::bucket?", "arn:aws:s3:::bucket1", True),
    ("arn:aws:s3:::bucket?", "arn:aws:s3:::bucket12", False),
    ("arn:aws:s3:::a.b/*", "arn:aws:s3:::aXb/k", False),  # a dot is a dot, not "any character"
    ("*", "arn:aws:dynamodb:us-east-1:123456789012:table/t", True),
])
def test_wildcards(wildcard: str, value: str, expected: bool) -> None:
    assert matches(wildcard, value) is expected


def test_actions_ignore_case_resources_do_not() -> None:
    allow = policy({"Effect": "Allow", "Action": "DynamoDB:updateitem", "Resource": TABLE})
    assert decide([allow], Request("dynamodb:UpdateItem", TABLE)) is Decision.ALLOWED
    assert decide([allow], Request("dynamodb:UpdateItem", TABLE.upper())) is Decision.IMPLICIT_DENY


def test_an_explicit_deny_wins_over_any_allow() -> None:
    allow = policy({"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"})
    deny = policy({"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": TABLE})
    assert decide([allow, deny], Request("dynamodb:DeleteItem", TABLE)) is Decision.EXPLICIT_DENY
    assert decide([allow, deny], Request("dynamodb:GetItem", TABLE)) is Decision.ALLOWED


def test_not_action_and_not_resource() -> None:
    everything_but = policy({"Effect": "Allow", "NotAction": "s3:Delete*", "NotResource": "arn:aws:s3:::secret/*"})
    assert decide([everything_but], Request("s3:GetObject", "arn:aws:s3:::data/k")) is Decision.ALLOWED
    assert decide([everything_but], Request("s3:DeleteObject", "arn:aws:s3:::data/k")) is Decision.IMPLICIT_DENY
    assert decide([everything_but], Request("s3:GetObject", "arn:aws:s3:::secret/k")) is Decision.IMPLICIT_DENY


def test_a_condition_on_a_key_the_request_lacks_does_not_match() -> None:
    through_dynamodb = policy({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": KEY,
                               "Condition": {"StringEquals": {"kms:ViaService": "dynamodb.us-east-1.amazonaws.com"}}})
    assert decide([through_dynamodb], Request("kms:Decrypt", KEY, VIA_DYNAMODB)) is Decision.ALLOWED
    assert decide([through_dynamodb], Request("kms:Decrypt", KEY)) is Decision.IMPLICIT_DENY
    assert decide([through_dynamodb], Request("kms:Decrypt", KEY, {"kms:ViaService": "s3.us-east-1.amazonaws.com"})
                  ) is Decision.IMPLICIT_DENY


@pytest.mark.parametrize(("operator", "context", "expected"), [
    ("StringEqualsIfExists", {}, Decision.ALLOWED),
    ("StringEqualsIfExists", {"kms:ViaService": "s3.us-east-1.amazonaws.com"}, Decision.IMPLICIT_DENY),
    ("StringNotEquals", {}, Decision.ALLOWED),
    ("StringNotEquals", VIA_DYNAMODB, Decision.IMPLICIT_DENY),
    ("StringLike", {"kms:viaservice": "dynamodb.us-east-1.amazonaws.com"}, Decision.ALLOWED),  # keys ignore case
])
def test_condition_operators(operator: str, context: dict[str, str], expected: Decision) -> None:
    conditioned = policy({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": KEY,
                          "Condition": {operator: {"kms:ViaService": ["dynamodb.*.amazonaws.com"
                                                                      if "Like" in operator else
                                                                      "dynamodb.us-east-1.amazonaws.com"]}}})
    assert decide([conditioned], Request("kms:Decrypt", KEY, context)) is expected


def test_what_it_cannot_judge_raises() -> None:
    numeric = policy({"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"NumericLessThan": {"a": "1"}}})
    with pytest.raises(UnsupportedPolicy, match="NumericLessThan"):
        decide([numeric], Request("s3:GetObject", "arn:aws:s3:::b/k"))
    key_policy = policy({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"})
    with pytest.raises(UnsupportedPolicy, match="resource-based"):
        decide([key_policy], Request("kms:Decrypt", KEY))


def test_the_denial_names_the_action_and_the_resource() -> None:
    request = Request("dynamodb:UpdateItem", TABLE)
    assert denial("arn:aws:sts::123456789012:assumed-role/csvkafka-worker/pod", request, Decision.IMPLICIT_DENY) == (
        "User: arn:aws:sts::123456789012:assumed-role/csvkafka-worker/pod is not authorized to perform: "
        f"dynamodb:UpdateItem on resource: {TABLE} because no identity-based policy allows the "
        "dynamodb:UpdateItem action")
    assert denial("p", request, Decision.EXPLICIT_DENY).endswith("with an explicit deny in an identity-based policy")


# Against moto's evaluator, on what both judge alike: Allow/Deny statements with Action or NotAction
# and Resource lists, no conditions, lowercase names (moto compares actions case-sensitively).
NAMES = st.text(alphabet="abc:/", min_size=1, max_size=6)
PATTERNS = st.text(alphabet="abc:/*", min_size=1, max_size=6)
STATEMENTS = st.fixed_dictionaries(
    {"Effect": st.sampled_from(["Allow", "Deny"]), "Resource": st.lists(PATTERNS, min_size=1, max_size=3)},
).flatmap(lambda s: st.one_of(
    st.lists(PATTERNS, min_size=1, max_size=3).map(lambda a: {**s, "Action": a}),
    st.lists(PATTERNS, min_size=1, max_size=3).map(lambda a: {**s, "NotAction": a}),
))


@given(statements=st.lists(STATEMENTS, min_size=1, max_size=4), action=NAMES, resource=NAMES)
def test_decisions_agree_with_motos_evaluator(statements: list[dict[str, Any]], action: str, resource: str) -> None:
    theirs = IAMPolicy(json.dumps(policy(*statements))).is_action_permitted(action, resource)
    expected = {PermissionResult.PERMITTED: Decision.ALLOWED, PermissionResult.DENIED: Decision.EXPLICIT_DENY,
                PermissionResult.NEUTRAL: Decision.IMPLICIT_DENY}[theirs]
    assert decide([policy(*statements)], Request(action, resource)) is expected


def call(service: str, method: str, path: str, query: str = "", target: str = "", body: dict[str, Any] | None = None
         ) -> Call:
    return Call(service, "us-east-1", "123456789012", method, path, query, {"x-amz-target": target},
                json.dumps(body or {}).encode())


@pytest.mark.parametrize(("method", "path", "query", "expected"), [
    ("HEAD", "/data/in/orders.csv", "", ("s3:GetObject", "arn:aws:s3:::data/in/orders.csv")),
    ("GET", "/data/in/orders.csv", "", ("s3:GetObject", "arn:aws:s3:::data/in/orders.csv")),
    ("GET", "/data/a%20b.csv", "", ("s3:GetObject", "arn:aws:s3:::data/a b.csv")),
    ("GET", "/data", "list-type=2&prefix=in%2F", ("s3:ListBucket", "arn:aws:s3:::data")),
    ("HEAD", "/data", "", ("s3:ListBucket", "arn:aws:s3:::data")),
    ("PUT", "/data/out.csv", "", ("s3:PutObject", "arn:aws:s3:::data/out.csv")),
])
def test_s3_calls(method: str, path: str, query: str, expected: tuple[str, str]) -> None:
    assert required(call("s3", method, path, query), lambda _: None) == [Request(*expected)]


@pytest.mark.parametrize(("method", "path", "query"), [("GET", "/data/k", "acl"), ("GET", "/", ""),
                                                         ("POST", "/data/k", "uploads")])
def test_unmapped_s3_calls_raise(method: str, path: str, query: str) -> None:
    with pytest.raises(Unmapped):
        required(call("s3", method, path, query), lambda _: None)


def test_dynamodb_writes_on_a_table_under_a_customer_key_use_the_key_through_dynamodb() -> None:
    needed = required(call("dynamodb", "POST", "/", target="DynamoDB_20120810.UpdateItem",
                           body={"TableName": "checkpoints"}), {"checkpoints": KEY}.get)
    assert needed == [Request("dynamodb:UpdateItem", TABLE),
                      *(Request(k, KEY, VIA_DYNAMODB)
                        for k in ("kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"))]


def test_dynamodb_reads_decrypt_only_and_a_table_without_a_key_needs_none() -> None:
    read = call("dynamodb", "POST", "/", target="DynamoDB_20120810.GetItem", body={"TableName": "checkpoints"})
    assert [r.action for r in required(read, {"checkpoints": KEY}.get)] == [
        "dynamodb:GetItem", "kms:Decrypt", "kms:DescribeKey"]
    assert required(read, lambda _: None) == [Request("dynamodb:GetItem", TABLE)]


def test_dynamodb_batches_need_the_action_on_every_table() -> None:
    batch = call("dynamodb", "POST", "/", target="DynamoDB_20120810.BatchGetItem",
                 body={"RequestItems": {"checkpoints": {}, "other": {}}})
    assert [r.resource for r in required(batch, lambda _: None)] == [TABLE, TABLE.replace("checkpoints", "other")]
    listing = call("dynamodb", "POST", "/", target="DynamoDB_20120810.ListTables")
    assert required(listing, lambda _: None) == [Request("dynamodb:ListTables", "*")]
    with pytest.raises(Unmapped):
        required(call("dynamodb", "POST", "/", target="DynamoDB_20120810.TransactWriteItems"), lambda _: None)
