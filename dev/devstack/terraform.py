"""The IAM policy documents of terraform/, rendered from its HCL the way Terraform renders them.

python-hcl2 parses the files; this module evaluates the expressions a policy document is made of
(references, string templates, for-expressions, conditionals, a few functions) against the values
Terraform would know at apply time: the variables, and the attributes of resources and data sources
(given by the caller, e.g. the stack's table and key ARNs). `aws_iam_policy_document` blocks, their
`dynamic "statement"` blocks and `for_each` are rendered to IAM JSON as the AWS provider does.
Anything outside that subset raises TerraformError naming the file and the construct, so a policy
this module cannot read fails its tests instead of being read wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hcl2.parser import parser
from lark import Token, Tree

TERRAFORM = Path(__file__).resolve().parents[2] / "terraform"
DOCUMENT = "data.aws_iam_policy_document."


class TerraformError(Exception):
    pass


@dataclass(frozen=True)
class Block:
    type: str
    labels: tuple[str, ...]
    body: Tree[Token]
    file: Path

    def attributes(self) -> dict[str, Tree[Token]]:
        return {_name(node): _children(node)[1] for node in _children(self.body) if node.data == "attribute"}

    def blocks(self, type_: str | None = None) -> list[Block]:
        found = [_block(node, self.file) for node in _children(self.body) if node.data == "block"]
        return [b for b in found if type_ is None or b.type == type_]


def _children(node: Tree[Token]) -> list[Tree[Token]]:
    return [c for c in node.children if isinstance(c, Tree) and c.data != "new_line_or_comment"]


def _name(node: Tree[Token]) -> str:
    identifier = _children(node)[0]
    return str(identifier.children[0])


def _block(node: Tree[Token], file: Path) -> Block:
    parts = _children(node)
    labels = tuple(_string_literal(p, file) if p.data == "string" else str(p.children[0]) for p in parts[1:-1])
    return Block(str(parts[0].children[0]), labels, parts[-1], file)


def _string_literal(node: Tree[Token], file: Path) -> str:
    parts = _children(node)
    if any(_children(p) for p in parts):
        raise TerraformError(f"{file.name}: a block label may not contain an interpolation")
    return "".join(_unescape(str(t)) for p in parts for t in p.children)


def _unescape(chars: str) -> str:
    return json.loads(f'"{chars}"') if "\\" in chars else chars


@dataclass
class Module:
    """The top-level blocks of every *.tf file in a directory."""

    directory: Path = TERRAFORM
    blocks: list[Block] = field(init=False)

    def __post_init__(self) -> None:
        self.blocks = []
        for path in sorted(self.directory.glob("*.tf")):
            tree = parser().parse(path.read_text())
            self.blocks.extend(_block(node, path) for node in _children(_children(tree)[0]) if node.data == "block")

    def find(self, type_: str, *labels: str) -> list[Block]:
        return [b for b in self.blocks if b.type == type_ and b.labels[:len(labels)] == labels]


Function = Callable[..., Any]


def _distinct(items: list[Any]) -> list[Any]:
    return [item for i, item in enumerate(items) if item not in items[:i]]


FUNCTIONS: dict[str, Function] = {
    "length": len,
    "replace": lambda text, old, new: text.replace(old, new),
    "concat": lambda *lists: [item for items in lists for item in items],
    "distinct": _distinct,
    "toset": _distinct,
    "tolist": list,
    "coalesce": lambda *values: next(v for v in values if v not in (None, "")),
}

OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    ">": lambda a, b: a > b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "&&": lambda a, b: a and b, "||": lambda a, b: a or b,
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b,
}


class Evaluator:
    """Values of HCL expressions. `known` holds what only `terraform apply` would know, by address:
    "aws_dynamodb_table.checkpoints.arn", "data.aws_eks_cluster.this.identity[0].oidc[0].issuer", …"""

    def __init__(self, module: Module, variables: Mapping[str, Any], known: Mapping[str, Any]) -> None:
        self.module = module
        self.known = known
        self.variables = dict(variables)
        for block in module.find("variable"):
            (name,) = block.labels
            default = block.attributes().get("default")
            if name not in self.variables and default is not None:
                self.variables[name] = self.value(default, {}, block.file)
        self._locals = {name: (expression, block.file) for block in module.find("locals")
                        for name, expression in block.attributes().items()}

    def value(self, node: Tree[Token], scope: Mapping[str, Any], file: Path) -> Any:
        kind = node.data
        parts = _children(node)
        tokens = [c for c in node.children if isinstance(c, Token)]
        if kind == "expr_term":  # a term, or a parenthesised expression
            return self.value(parts[0], scope, file)
        if kind == "literal_value":
            return {"true": True, "false": False, "null": None}[str(tokens[0])]
        if kind == "int_lit":
            return int(str(tokens[0]))
        if kind == "float_lit":
            return float(str(tokens[0]))
        if kind == "string":
            return self._template(parts, scope, file)
        if kind == "tuple":
            return [self.value(p, scope, file) for p in parts]
        if kind == "object":
            return {self._key(elem, scope, file): self.value(_children(elem)[1], scope, file) for elem in parts}
        if kind in ("identifier", "get_attr_expr_term", "index_expr_term"):
            return self._reference(node, scope, file)
        if kind == "function_call":
            name = str(parts[0].children[0])
            if name not in FUNCTIONS:
                raise TerraformError(f"{file.name}: function {name}() is not supported here; add it to FUNCTIONS")
            arguments = _children(parts[1]) if len(parts) > 1 else []
            return FUNCTIONS[name](*(self.value(a, scope, file) for a in arguments))
        if kind == "conditional":
            condition, yes, no = parts
            return self.value(yes if self.value(condition, scope, file) else no, scope, file)
        if kind == "binary_op":
            left, term = parts
            operator_node, right = _children(term)
            operator = str(operator_node.children[0])
            return OPERATORS[operator](self.value(left, scope, file), self.value(right, scope, file))
        if kind == "unary_op":
            operand = self.value(parts[0], scope, file)
            return not operand if str(tokens[0]) == "!" else -operand
        if kind == "for_tuple_expr":
            return self._for_tuple(parts, scope, file)
        raise TerraformError(f"{file.name}: HCL expression {kind!r} is not supported here")

    def _key(self, element: Tree[Token], scope: Mapping[str, Any], file: Path) -> str:
        key = _children(_children(element)[0])[0]
        if key.data == "expr_term" and _children(key)[0].data == "identifier":
            return str(_children(key)[0].children[0])
        return str(self.value(key, scope, file))

    def _template(self, parts: list[Tree[Token]], scope: Mapping[str, Any], file: Path) -> Any:
        pieces: list[Any] = []
        for part in parts:
            if part.data != "string_part":
                raise TerraformError(f"{file.name}: template directive {part.data!r} is not supported here")
            inner = _children(part)
            if inner and inner[0].data == "interpolation":
                pieces.append(self.value(_children(inner[0])[0], scope, file))
            elif inner:
                raise TerraformError(f"{file.name}: template directive {inner[0].data!r} is not supported here")
            else:
                pieces.append(_unescape("".join(str(t) for t in part.children)))
        # "${x}" alone is x itself (a list stays a list), as in Terraform.
        if len(pieces) == 1 and len(parts) == 1 and _children(parts[0]):
            return pieces[0]
        return "".join(str(p) for p in pieces)

    def _for_tuple(self, parts: list[Tree[Token]], scope: Mapping[str, Any], file: Path) -> list[Any]:
        intro, body, *condition = parts
        names = [str(n.children[0]) for n in _children(intro) if n.data == "identifier"]
        collection = self.value(_children(intro)[-1], scope, file)
        pairs = collection.items() if isinstance(collection, dict) else enumerate(collection)
        out = []
        for key, item in pairs:
            inner = {**scope, **({names[0]: item} if len(names) == 1 else {names[0]: key, names[1]: item})}
            if condition and not self.value(_children(condition[0])[0], inner, file):
                continue
            out.append(self.value(body, inner, file))
        return out

    def _reference(self, node: Tree[Token], scope: Mapping[str, Any], file: Path) -> Any:
        root, path = self._traversal(node, scope, file)
        if root in scope:
            value = scope[root]
        elif root == "var":
            name, path = path[0], path[1:]
            if name not in self.variables:
                raise TerraformError(f"{file.name}: variable {name!r} has no value; give it in variables")
            value = self.variables[name]
        elif root == "local":
            name, path = path[0], path[1:]
            expression, where = self._locals[name]
            value = self.value(expression, {}, where)
        elif root == "path" and path == ["module"]:
            return str(self.module.directory)
        else:
            address = root + "".join(f".{p}" if isinstance(p, str) else f"[{json.dumps(p[0])}]" for p in path)
            if address not in self.known and address.startswith(DOCUMENT) and address.endswith(".json"):
                wanted = address.removeprefix(DOCUMENT).removesuffix(".json")
                (block,) = self.module.find("data", "aws_iam_policy_document", wanted.partition("[")[0])
                return json.dumps(next(r.document for r in _rendered(self, block) if r.address == wanted))
            if address not in self.known:
                raise TerraformError(f"{file.name}: {address} is known only after apply; give it in known")
            return self.known[address]
        for step in path:
            value = value[step if isinstance(step, str) else step[0]]
        return value

    def _traversal(self, node: Tree[Token], scope: Mapping[str, Any], file: Path) -> tuple[str, list[Any]]:
        if node.data == "identifier":
            return str(node.children[0]), []
        if node.data == "expr_term":
            return self._traversal(_children(node)[0], scope, file)
        base, step = _children(node)
        root, path = self._traversal(base, scope, file)
        if node.data == "get_attr_expr_term":
            return root, [*path, str(_children(step)[0].children[0])]
        return root, [*path, (self.value(_children(step)[0], scope, file),)]  # an index, not an attribute


@dataclass(frozen=True)
class Rendered:
    """One rendered `aws_iam_policy_document`: its address (`worker`, `trust["worker"]`) and JSON."""

    address: str
    document: dict[str, Any]


STATEMENT_KEYS = {"sid": "Sid", "effect": "Effect", "actions": "Action", "not_actions": "NotAction",
                  "resources": "Resource", "not_resources": "NotResource"}
PRINCIPAL_KEYS = {"principals": "Principal", "not_principals": "NotPrincipal"}


def policy_documents(evaluator: Evaluator) -> Iterator[Rendered]:
    for block in evaluator.module.find("data", "aws_iam_policy_document"):
        yield from _rendered(evaluator, block)


def _rendered(evaluator: Evaluator, block: Block) -> Iterator[Rendered]:
    name = block.labels[1]
    attributes = block.attributes()
    unknown = set(attributes) - {"for_each", "version", "source_policy_documents"}
    if unknown:
        raise TerraformError(f"{block.file.name}: {name}: {sorted(unknown)} not supported here")
    if "for_each" in attributes:
        each = evaluator.value(attributes["for_each"], {}, block.file)
        pairs = each.items() if isinstance(each, dict) else ((v, v) for v in each)
        for key, value in pairs:
            yield Rendered(f'{name}["{key}"]', _document(evaluator, block, {"each": {"key": key, "value": value}}))
    else:
        yield Rendered(name, _document(evaluator, block, {}))


def _document(evaluator: Evaluator, block: Block, scope: Mapping[str, Any]) -> dict[str, Any]:
    sources = block.attributes().get("source_policy_documents")
    # As the provider merges them: the sources' statements first; one of this document's own with the
    # same Sid replaces the source's.
    inherited = [statement for source in (evaluator.value(sources, scope, block.file) if sources is not None else [])
                 for statement in json.loads(source)["Statement"]]
    statements = [_statement(evaluator, s, scope) for s in block.blocks("statement")]
    for dynamic in block.blocks("dynamic"):
        (label,) = dynamic.labels
        if label != "statement":
            raise TerraformError(f"{dynamic.file.name}: dynamic {label!r} is not supported here")
        each = evaluator.value(dynamic.attributes()["for_each"], scope, dynamic.file)
        iterator = dynamic.attributes().get("iterator")
        name = str(_children(iterator)[0].children[0]) if iterator is not None else label
        pairs = each.items() if isinstance(each, dict) else enumerate(each)
        for key, value in pairs:
            (content,) = dynamic.blocks("content")
            statements.append(_statement(evaluator, content, {**scope, name: {"key": key, "value": value}}))
    own = {s["Sid"] for s in statements if s.get("Sid")}
    version = block.attributes().get("version")
    return {"Version": evaluator.value(version, scope, block.file) if version is not None else "2012-10-17",
            "Statement": [s for s in inherited if s.get("Sid") not in own] + statements}


def _statement(evaluator: Evaluator, block: Block, scope: Mapping[str, Any]) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow"}
    for name, expression in block.attributes().items():
        if name not in STATEMENT_KEYS:
            raise TerraformError(f"{block.file.name}: statement attribute {name!r} is not supported here")
        statement[STATEMENT_KEYS[name]] = evaluator.value(expression, scope, block.file)
    for nested in block.blocks():
        attributes = {k: evaluator.value(v, scope, block.file) for k, v in nested.attributes().items()}
        if nested.type in PRINCIPAL_KEYS:
            principals = statement.setdefault(PRINCIPAL_KEYS[nested.type], {})
            principals.setdefault(attributes["type"], []).extend(attributes["identifiers"])
        elif nested.type == "condition":
            tests = statement.setdefault("Condition", {})
            tests.setdefault(attributes["test"], {})[attributes["variable"]] = attributes["values"]
        else:
            raise TerraformError(f"{block.file.name}: statement block {nested.type!r} is not supported here")
    return statement


def render(variables: Mapping[str, Any], known: Mapping[str, Any], directory: Path = TERRAFORM
           ) -> dict[str, dict[str, Any]]:
    """Every policy document of the module, by address."""
    return {r.address: r.document for r in policy_documents(Evaluator(Module(directory), variables, known))}


def render_for_stack(*, buckets: list[str], table: str, key_arn: str, region: str = "us-east-1",
                     account: str = "123456789012", directory: Path = TERRAFORM,
                     variables: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The documents as `terraform apply` would render them for the local stack's account: the given
    source buckets, checkpoint table and key; a cluster and an MSK cluster named csvkafka-dev; any
    other `variables`."""
    msk_cluster = f"arn:aws:kafka:{region}:{account}:cluster/csvkafka-dev/00000000-0000-0000-0000-000000000000"
    given = {"aws_region": region, "cluster_name": "csvkafka-dev", "s3_buckets": buckets,
             "checkpoint_table_name": table, "msk_cluster_arn": msk_cluster, **(variables or {})}
    issuer = f"https://oidc.eks.{region}.amazonaws.com/id/{'0' * 32}"
    known = {
        "data.aws_caller_identity.current.account_id": account,
        "data.aws_partition.current.partition": "aws",
        "data.aws_eks_cluster.this.identity[0].oidc[0].issuer": issuer,
        "data.aws_iam_openid_connect_provider.cluster.arn":
            f"arn:aws:iam::{account}:oidc-provider/{issuer.removeprefix('https://')}",
        "aws_dynamodb_table.checkpoints.arn": f"arn:aws:dynamodb:{region}:{account}:table/{table}",
        "aws_kms_key.csvkafka.arn": key_arn,
    }
    return render(given, known, directory)
