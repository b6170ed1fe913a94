"""IAM policy evaluation for the local stack: a stand-in for AWS's, for identity-based policies.

As AWS evaluates a request against an identity's policies: an explicit Deny wins; otherwise an
Allow whose Action (or NotAction), Resource (or NotResource) and Condition all match allows it;
otherwise it is denied implicitly. Actions match case-insensitively, resource ARNs case-sensitively,
both with the `*` and `?` wildcards (a `*` spans `:` and `/`, as in AWS). Condition operators:
the String and Arn families (Equals, NotEquals, Like, NotLike) and Bool, each also as `…IfExists`;
a key the request does not carry makes a positive operator false. Anything else raises, so a policy
this module cannot judge is never judged wrong. Not modelled: resource-based policies, SCPs,
permission boundaries, session policies (the stack has none of them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Any


class UnsupportedPolicy(Exception):
    pass


@dataclass(frozen=True)
class Request:
    """One permission a call needs: `dynamodb:UpdateItem` on a table's ARN, with its context keys."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


class Decision(Enum):
    ALLOWED = "allowed"
    IMPLICIT_DENY = "no identity-based policy allows"
    EXPLICIT_DENY = "an explicit deny in an identity-based policy"


@lru_cache(maxsize=1024)
def _pattern(wildcard: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in wildcard)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def matches(wildcard: str, value: str, *, ignore_case: bool = False) -> bool:
    return _pattern(wildcard, ignore_case).fullmatch(value) is not None


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


OPERATORS = frozenset({"StringEquals", "StringEqualsIgnoreCase", "StringNotEquals", "StringLike", "StringNotLike",
                       "ArnEquals", "ArnNotEquals", "ArnLike", "ArnNotLike", "Bool"})


def _condition(operator: str, expected: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    base = operator.removesuffix("IfExists")
    if base not in OPERATORS:
        raise UnsupportedPolicy(f"condition operator {operator} is not evaluated here")
    if_exists = base != operator
    present = {key.lower(): value for key, value in context.items()}
    for key, values in expected.items():
        actual = present.get(key.lower())
        if actual is None:
            if if_exists or "Not" in base:
                continue
            return False
        if not _test(base, _listed(values), actual):
            return False
    return True


def _test(operator: str, values: list[str], actual: str) -> bool:
    if operator in ("StringEquals", "ArnEquals"):
        return actual in values
    if operator == "StringEqualsIgnoreCase":
        return actual.lower() in (v.lower() for v in values)
    if operator in ("StringLike", "ArnLike"):
        return any(matches(v, actual) for v in values)
    if operator in ("StringNotEquals", "ArnNotEquals"):
        return actual not in values
    if operator in ("StringNotLike", "ArnNotLike"):
        return not any(matches(v, actual) for v in values)
    return actual.lower() in (v.lower() for v in values)  # Bool


def _applies(statement: Mapping[str, Any], request: Request) -> bool:
    if "Principal" in statement or "NotPrincipal" in statement:
        raise UnsupportedPolicy("a Principal belongs in a resource-based policy, not an identity's")
    if "Action" in statement:
        action = any(matches(a, request.action, ignore_case=True) for a in _listed(statement["Action"]))
    else:
        action = not any(matches(a, request.action, ignore_case=True) for a in _listed(statement["NotAction"]))
    if "Resource" in statement:
        resource = any(matches(r, request.resource) for r in _listed(statement["Resource"]))
    else:
        resource = not any(matches(r, request.resource) for r in _listed(statement["NotResource"]))
    return action and resource and all(
        _condition(operator, expected, request.context)
        for operator, expected in statement.get("Condition", {}).items())


def statements(policies: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [s for policy in policies for s in _listed_statements(policy["Statement"])]


def _listed_statements(value: Any) -> list[Mapping[str, Any]]:
    return [value] if isinstance(value, Mapping) else list(value)


def decide(policies: Sequence[Mapping[str, Any]], request: Request) -> Decision:
    applying = [s for s in statements(policies) if _applies(s, request)]
    if any(s.get("Effect") == "Deny" for s in applying):
        return Decision.EXPLICIT_DENY
    if any(s.get("Effect") == "Allow" for s in applying):
        return Decision.ALLOWED
    return Decision.IMPLICIT_DENY


def denial(principal: str, request: Request, decision: Decision) -> str:
    """AWS's wording of an AccessDenied message, which names the action and the resource."""
    return (f"User: {principal} is not authorized to perform: {request.action} on resource: {request.resource} "
            f"because {decision.value} the {request.action} action" if decision is Decision.IMPLICIT_DENY else
            f"User: {principal} is not authorized to perform: {request.action} on resource: {request.resource} "
            f"with {decision.value}")
