"""The IAM policies in terraform/, rendered from the HCL as Terraform would render them (devstack.terraform).

A `*` action, or a `*` resource, appears only where AWS requires it; each such place is listed in
EXCEPTIONS with the reason. A wildcard inside an ARN is allowed only as its last character, after
a fixed prefix that names what it covers (a bucket's objects, the worker's csvkafka-* ids).

The worker and operator roles allow every S3/DynamoDB call their code makes (found in the source),
with the checkpoint table under the module's key, and nothing those calls do not need.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore import xform_name
from botocore.session import get_session

from devstack.iam import Decision, Request, decide
from devstack.permissions import KMS_FOR_WRITES, dynamodb_requests, s3_requests
from devstack.terraform import Evaluator, Module, TerraformError, render_for_stack

REPO = Path(__file__).resolve().parents[2]
REGION, ACCOUNT = "us-east-1", "123456789012"
BUCKET, TABLE = "csv-exports", "csv-kafka-checkpoint"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-0000-0000-0000-000000000000"
MANIFESTS = "manifests/"
DOCUMENTS = render_for_stack(buckets=[BUCKET], table=TABLE, key_arn=KEY,
                             variables={"manifest_prefixes": [f"{BUCKET}/{MANIFESTS}"]})

# (policy document, statement sid) → what may be a wildcard there, and why AWS requires it.
EXCEPTIONS: dict[tuple[str, str], dict[str, set[str]]] = {
    # AWS's default key policy statement: the account root delegates the key to IAM policies.
    # Without it no IAM policy can use or administer the key, and AWS cannot recover a key that
    # nobody may manage. In a key policy "*" is the key itself (the only resource it can name).
    ("kms", "AccountRootDelegatesToIam"): {"actions": {"kms:*"}, "resources": {"*"}},
    # A key policy's Resource is always "*" (this key); a condition pins it to the log group.
    ("kms", "CloudWatchLogsForTheFargateLogGroup"): {"actions": set(), "resources": {"*"}},
}
# The ends of ARNs after which a final "*" is specific enough.
SCOPED_WILDCARD = re.compile(r"(/|csvkafka-|csvkafka-reader-|:log-stream:)\*$")


def listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


POLICY_STATEMENTS = [(address, statement) for address, document in DOCUMENTS.items()
                     for statement in document["Statement"]]


def test_policies_are_found() -> None:
    assert {"worker", "operator", "kms", "fargate_logging", 'trust["worker"]', 'trust["operator"]'} <= set(DOCUMENTS)


@pytest.mark.parametrize(("document", "statement"), POLICY_STATEMENTS,
                         ids=[f"{a}:{s.get('Sid', '?')}" for a, s in POLICY_STATEMENTS])
def test_no_wildcard_beyond_what_aws_requires(document: str, statement: dict[str, Any]) -> None:
    allowed = EXCEPTIONS.get((document, statement.get("Sid", "")), {"actions": set(), "resources": set()})
    for action in listed(statement["Action"]):
        assert "*" not in action or action in allowed["actions"], f"wildcard action {action}"
    for resource in listed(statement.get("Resource", [])):
        if resource in allowed["resources"]:
            continue
        assert "*" not in resource[:-1] and (not resource.endswith("*") or SCOPED_WILDCARD.search(resource)), (
            f"unscoped wildcard resource {resource}")
    assert "NotAction" not in statement and "NotResource" not in statement


def test_every_exception_is_still_needed() -> None:
    sids = {(address, statement.get("Sid", "")) for address, statement in POLICY_STATEMENTS}
    assert set(EXCEPTIONS) <= sids


def test_policies_of_roles_and_keys_come_from_checked_documents() -> None:
    # A jsonencode()d or heredoc policy would escape the checks above.
    module = Module()
    evaluator = Evaluator(module, {}, {f"data.aws_iam_policy_document.{a}.json": a for a in DOCUMENTS})
    checked = 0
    for type_, attribute in (("aws_iam_role_policy", "policy"), ("aws_iam_policy", "policy"),
                             ("aws_iam_role", "assume_role_policy"), ("aws_kms_key", "policy")):
        for block in module.find("resource", type_):
            rendered = evaluator.value(block.attributes()[attribute], {}, block.file)
            assert rendered in DOCUMENTS, f"{type_}.{block.labels[1]}.{attribute} is not a checked document"
            checked += 1
    assert checked >= 8


def test_an_unsupported_construct_fails_loudly(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text('data "aws_iam_policy_document" "x" {\n  statement {\n'
                                      '    actions   = [upper("s3:getobject")]\n    resources = ["*"]\n  }\n}\n')
    with pytest.raises(TerraformError, match=r"upper\(\) is not supported"):
        render_for_stack(buckets=[], table="t", key_arn=KEY, directory=tmp_path)


def test_source_documents_merge_as_the_provider_merges_them(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text("""
data "aws_iam_policy_document" "shared" {
  statement {
    sid       = "Read"
    actions   = ["s3:GetObject"]
    resources = ["arn:aws:s3:::shared/*"]
  }
  statement {
    sid       = "List"
    actions   = ["s3:ListBucket"]
    resources = ["arn:aws:s3:::shared"]
  }
}

data "aws_iam_policy_document" "own" {
  source_policy_documents = [data.aws_iam_policy_document.shared.json]
  statement {
    sid       = "Read"
    actions   = ["s3:GetObject"]
    resources = ["arn:aws:s3:::own/*"]
  }
}
""")
    own = render_for_stack(buckets=[], table="t", key_arn=KEY, directory=tmp_path)["own"]
    assert [(s["Sid"], s["Resource"]) for s in own["Statement"]] == [("List", ["arn:aws:s3:::shared"]),
                                                                       ("Read", ["arn:aws:s3:::own/*"])]


def test_irsa_roles_trust_only_their_service_accounts() -> None:
    namespaces = ["imports-a", "imports-b"]
    documents = render_for_stack(buckets=[BUCKET], table=TABLE, key_arn=KEY,
                                 variables={"import_namespaces": namespaces})
    oidc = f"oidc.eks.{REGION}.amazonaws.com/id/{'0' * 32}"
    subjects = {"worker": [f"system:serviceaccount:{ns}:csvkafka-worker" for ns in namespaces],
                "operator": ["system:serviceaccount:csvkafka-system:csvkafka-operator"]}
    for role, expected in subjects.items():
        (statement,) = documents[f'trust["{role}"]']["Statement"]
        assert statement["Action"] == ["sts:AssumeRoleWithWebIdentity"]
        assert statement["Condition"] == {"StringEquals": {f"{oidc}:sub": expected,
                                                           f"{oidc}:aud": ["sts.amazonaws.com"]}}


def test_worker_may_use_only_its_own_transactional_ids_and_groups() -> None:
    worker = {s["Sid"]: s for s in DOCUMENTS["worker"]["Statement"]}
    msk = f"arn:aws:kafka:{REGION}:{ACCOUNT}:%s/csvkafka-dev/00000000-0000-0000-0000-000000000000"
    assert worker["TransactionalIds"]["Resource"] == [f"{msk % 'transactional-id'}/csvkafka-*"]
    assert worker["PositionsReaderGroups"]["Resource"] == [f"{msk % 'group'}/csvkafka-reader-*"]


def operations_called(package: Path) -> set[tuple[str, str]]:
    """(service, operation) of every S3 and DynamoDB operation named in the package's source: as a
    method (`client.head_object(…)`) or as a string (`self._call("update_item", …)`)."""
    session = get_session()
    by_name = {xform_name(operation): (service, operation) for service in ("s3", "dynamodb")
               for operation in session.get_service_model(service).operation_names}
    found = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            name = node.attr if isinstance(node, ast.Attribute) else node.value if (
                isinstance(node, ast.Constant) and isinstance(node.value, str)) else None
            if name in by_name:
                found.add(by_name[name])
    return found


# Calls the code makes that its role does not: who makes them instead.
NOT_THE_ROLES = {
    ("worker", "dynamodb", "DeleteItem"): "`csvkafka checkpoint delete`, run by a person with their own credentials",
}
# Permissions a role needs without a call of its own.
WITHOUT_A_CALL = {
    ("worker", "s3:ListBucket"): "S3 answers a missing object with 404 (not 403) only to those allowed to list",
}
ROLES = {"worker": REPO / "worker" / "csvkafka_worker", "operator": REPO / "operator" / "csvkafka_operator"}


def permissions(role: str) -> Iterator[Request]:
    for service, operation in sorted(operations_called(ROLES[role])):
        if (role, service, operation) in NOT_THE_ROLES:
            continue
        if service == "s3":
            key = f"{MANIFESTS}import.json" if operation == "PutObject" else "exports/orders.csv"
            yield from s3_requests(operation, BUCKET, key)
        else:
            yield from dynamodb_requests(operation, REGION, ACCOUNT, [TABLE], lambda _: KEY)


def test_the_code_calls_what_the_roles_were_written_for() -> None:
    assert operations_called(ROLES["worker"]) == {("s3", "HeadObject"), ("s3", "GetObject"), ("s3", "ListObjectsV2"),
                                                  ("s3", "PutObject"), ("dynamodb", "GetItem"),
                                                  ("dynamodb", "UpdateItem"), ("dynamodb", "PutItem"),
                                                  ("dynamodb", "DeleteItem")}
    assert operations_called(ROLES["operator"]) == {("dynamodb", "BatchGetItem"), ("dynamodb", "PutItem"),
                                                    ("dynamodb", "DeleteItem")}


@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_call_the_code_makes_is_allowed(role: str) -> None:
    denied = [r for r in permissions(role) if decide([DOCUMENTS[role]], r) is not Decision.ALLOWED]
    assert denied == []


@pytest.mark.parametrize("role", sorted(ROLES))
def test_the_roles_allow_nothing_the_code_does_not_need(role: str) -> None:
    granted = {a for s in DOCUMENTS[role]["Statement"] for a in listed(s["Action"])
               if not a.startswith("kafka-cluster:")}  # Kafka's own authorizer checks these (MSK IAM)
    needed = {r.action for r in permissions(role)} | {a for (r, a) in WITHOUT_A_CALL if r == role}
    assert granted == needed


def test_the_key_is_usable_only_through_dynamodb() -> None:
    via = {"kms:ViaService": f"dynamodb.{REGION}.amazonaws.com"}
    other_key = KEY.replace("1234abcd", "99999999")
    for role in ROLES:
        for action in KMS_FOR_WRITES:
            assert decide([DOCUMENTS[role]], Request(action, KEY, via)) is Decision.ALLOWED
            assert decide([DOCUMENTS[role]], Request(action, KEY)) is Decision.IMPLICIT_DENY
            assert decide([DOCUMENTS[role]], Request(action, other_key, via)) is Decision.IMPLICIT_DENY


def test_sse_kms_sources_are_decrypted_only_through_s3_and_only_when_named() -> None:
    assert "DecryptSourceObjectsThroughS3" not in {s.get("Sid") for s in DOCUMENTS["worker"]["Statement"]}
    source_key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/5ce0000-0000-0000-0000-000000000000"
    worker = render_for_stack(buckets=[BUCKET], table=TABLE, key_arn=KEY,
                              variables={"source_kms_key_arns": [source_key]})["worker"]
    via_s3 = {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
    assert decide([worker], Request("kms:Decrypt", source_key, via_s3)) is Decision.ALLOWED
    assert decide([worker], Request("kms:Decrypt", source_key)) is Decision.IMPLICIT_DENY
    assert decide([worker], Request("kms:Encrypt", source_key, via_s3)) is Decision.IMPLICIT_DENY
