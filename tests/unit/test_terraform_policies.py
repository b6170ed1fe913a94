"""The IAM policies in terraform/ name every action and every resource, parsed from the HCL.

A `*` action, or a `*` resource, appears only where AWS requires it; each such place is listed in
EXCEPTIONS with the reason. A wildcard inside an ARN is allowed only as its last character, after
a fixed prefix that names what it covers (a bucket's objects, the worker's csvkafka-* ids).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
import pytest

TERRAFORM = Path(__file__).resolve().parents[2] / "terraform"

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


def unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def strings(expression: Any) -> list[str]:
    """The strings an HCL expression yields: a list's items, or a for-expression's element template."""
    if isinstance(expression, list):
        return [s for item in expression for s in strings(item)]
    text = str(expression)
    comprehension = re.fullmatch(r'\$\{\[for .+ : "(.*)"\]\}', text)
    return [comprehension.group(1) if comprehension else unquote(text)]


def load(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return dict(hcl2.load(handle))


def blocks(kind: str, type_: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(TERRAFORM.glob("*.tf")):
        for block in load(path).get(kind, []):
            for block_type, named in block.items():
                if unquote(block_type) == type_:
                    for name, body in named.items():
                        yield unquote(name), body


def statements(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from document.get("statement", [])
    for dynamic in document.get("dynamic", []):
        for name, body in dynamic.items():
            if unquote(name) == "statement":
                yield from body["content"]


POLICY_STATEMENTS = [(name, statement) for name, document in blocks("data", "aws_iam_policy_document")
                     for statement in statements(document)]


def test_policies_are_found() -> None:
    names = {name for name, _ in POLICY_STATEMENTS}
    assert {"worker", "operator", "kms", "fargate_logging"} <= names


@pytest.mark.parametrize(("document", "statement"), POLICY_STATEMENTS,
                         ids=[f"{n}:{unquote(s.get('sid', '?'))}" for n, s in POLICY_STATEMENTS])
def test_no_wildcard_beyond_what_aws_requires(document: str, statement: dict[str, Any]) -> None:
    allowed = EXCEPTIONS.get((document, unquote(statement.get("sid", ""))), {"actions": set(), "resources": set()})
    for action in strings(statement.get("actions", [])):
        assert "*" not in action or action in allowed["actions"], f"wildcard action {action}"
    for resource in strings(statement.get("resources", [])):
        if resource in allowed["resources"]:
            continue
        assert "*" not in resource[:-1] and (not resource.endswith("*") or SCOPED_WILDCARD.search(resource)), (
            f"unscoped wildcard resource {resource}")
    assert "not_actions" not in statement and "not_resources" not in statement


def test_every_exception_is_still_needed() -> None:
    sids = {(name, unquote(statement.get("sid", ""))) for name, statement in POLICY_STATEMENTS}
    assert set(EXCEPTIONS) <= sids


def test_inline_policies_come_from_checked_documents() -> None:
    # A jsonencode()d or heredoc policy would escape the checks above.
    for _, body in blocks("resource", "aws_iam_role_policy"):
        assert re.fullmatch(r"\$\{data\.aws_iam_policy_document\.\w+\.json\}", body["policy"])


def test_irsa_roles_trust_only_their_service_accounts() -> None:
    (statement,) = statements(dict(blocks("data", "aws_iam_policy_document"))["trust"])
    conditions = {unquote(c["variable"]): (unquote(c["test"]), strings(c["values"])) for c in statement["condition"]}
    assert conditions["${local.oidc_host}:sub"] == ("StringEquals", ["${each.value}"])
    assert conditions["${local.oidc_host}:aud"] == ("StringEquals", ["sts.amazonaws.com"])
    locals_ = load(TERRAFORM / "irsa.tf")["locals"]
    subjects = next(local["irsa_subjects"] for local in locals_ if "irsa_subjects" in local)
    for role, account in (("worker", "local.worker_service_account"), ("operator", "local.operator_service_account")):
        assert [s for s in strings(subjects[role]) if f"${{{account}}}" not in s] == [], role


def test_worker_may_use_only_its_own_transactional_ids_and_groups() -> None:
    worker = {unquote(s["sid"]): s for s in statements(dict(blocks("data", "aws_iam_policy_document"))["worker"])}
    assert strings(worker["TransactionalIds"]["resources"]) == ["${local.msk_transactional_id}/csvkafka-*"]
    assert strings(worker["PositionsReaderGroups"]["resources"]) == ["${local.msk_group}/csvkafka-reader-*"]
