"""An AWS endpoint that enforces IAM: a proxy in front of the stack's moto that judges each call.

moto's own IAM authorization does not cover what csvkafka calls: it judges DynamoDB calls against
the resource "*" (so a policy scoped to a table's ARN allows nothing), evaluates no KMS permission
for a table under a customer managed key, and few conditions. This gate does: each access key
stands for an identity with its policies (registered by tests, rendered from terraform/); each call
is mapped to the permissions it needs (devstack.permissions) and judged (devstack.iam); a denied
call gets AWS's AccessDenied response, naming the action, and never reaches moto. As in AWS, a
missing object is a 404 only to those allowed s3:ListBucket on its bucket (a 403 to anyone else).
Signatures are not verified: the access key id names the identity.

    python -m devstack.iamgate --host H --port P --upstream http://H:4566
    PUT  /iam-gate/identities/<access key id>   {"principal": ARN, "policies": [policy, …]}
    GET  /iam-gate/decisions/<access key id>    every permission judged for that key, in order
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import threading
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from devstack.iam import Decision, Request, decide, denial
from devstack.permissions import Call, Unmapped, required

ACCOUNT = "123456789012"  # moto's default account
ADMIN = "/iam-gate/"
CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/([^/]+)/([^/]+)/aws4_request")
PIECE = 1 << 20
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
              "proxy-authenticate"}
SET_BY_THE_GATE = {"content-length", "server", "date"}


@dataclass(frozen=True)
class Identity:
    principal: str
    policies: Sequence[Mapping[str, Any]]


class Gate:
    """The gate's state: identities by access key id, what was judged, tables' keys."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.identities: dict[str, Identity] = {}
        self.decisions: dict[str, list[dict[str, str]]] = {}
        self._table_keys: dict[tuple[str, str], str | None] = {}
        self._lock = threading.Lock()

    def judge(self, access_key: str, call: Call) -> tuple[Request, Decision] | None:
        """The first permission the call lacks, with why; None when it has them all."""
        identity = self.identities[access_key]
        for request in required(call, lambda table: self.table_key(call.region, table)):
            decision = decide(identity.policies, request)
            with self._lock:
                self.decisions.setdefault(access_key, []).append(
                    {"action": request.action, "resource": request.resource, "decision": decision.name})
            if decision is not Decision.ALLOWED:
                return request, decision
        return None

    def allows(self, access_key: str, request: Request) -> bool:
        return decide(self.identities[access_key].policies, request) is Decision.ALLOWED

    def table_key(self, region: str, table: str) -> str | None:
        """The customer managed key a table is encrypted with, asked of moto once per table."""
        if (region, table) not in self._table_keys:
            body = json.dumps({"TableName": table}).encode()
            status, _, answer = self.forward("POST", "/", {
                "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.DescribeTable",
                "Authorization": f"AWS4-HMAC-SHA256 Credential=gate/20260101/{region}/dynamodb/aws4_request"}, body)
            description = json.loads(answer).get("Table", {}).get("SSEDescription", {}) if status == 200 else {}
            key = description.get("KMSMasterKeyArn") if description.get("SSEType") == "KMS" else None
            self._table_keys[(region, table)] = key
        return self._table_keys[(region, table)]

    def forward(self, method: str, target: str, headers: Mapping[str, str], body: bytes
                ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = self.connect()
        try:
            connection.request(method, target, body=body, headers=dict(headers))
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.upstream.hostname or "127.0.0.1", self.upstream.port or 80,
                                          timeout=120)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: GateServer

    def log_message(self, format: str, *args: Any) -> None:
        return  # one line per denial is written instead (below); allowed calls are quiet

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def _handle(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            self.close_connection = True  # its body stays unread: the connection cannot carry another request
            self._json(411, {"error": "the IAM gate needs a Content-Length (no chunked bodies)"})
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith(ADMIN):
            self._admin(body)
            return
        gate = self.server.gate
        headers = {k.lower(): v for k, v in self.headers.items()}
        found = CREDENTIAL.search(headers.get("authorization", ""))
        if found is None or found.group(1) not in gate.identities:
            service = "s3" if found is None else found.group(3)
            self._refuse(service, "InvalidAccessKeyId" if service == "s3" else "UnrecognizedClientException",
                         "The AWS Access Key Id you provided does not exist in our records."
                         if service == "s3" else "The security token included in the request is invalid.")
            return
        access_key, region, service = found.groups()
        path, _, query = self.path.partition("?")
        call = Call(service, region, ACCOUNT, self.command, path, query, headers, body)
        try:
            lacking = gate.judge(access_key, call)
        except Unmapped as error:
            self._refuse(service, "AccessDenied", f"the stack's IAM gate does not judge this call: {error}")
            return
        if lacking is not None:
            request, decision = lacking
            message = denial(gate.identities[access_key].principal, request, decision)
            print(f"denied {access_key}: {message}", flush=True)
            self._refuse(service, "AccessDenied", message)
            return
        self._proxy(gate, call, access_key, body)

    def _proxy(self, gate: Gate, call: Call, access_key: str, body: bytes) -> None:
        if call.service == "s3" and call.operation in ("HeadObject", "GetObject"):
            bucket = call.path.lstrip("/").partition("/")[0]
            may_list = gate.allows(access_key, Request("s3:ListBucket", f"arn:aws:s3:::{bucket}"))
        else:
            may_list = True
        connection = gate.connect()
        try:
            forwarded = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            connection.request(self.command, self.path, body=body, headers=forwarded)
            response = connection.getresponse()
            if response.status == 404 and not may_list:
                response.read()
                self._refuse("s3", "AccessDenied", "Access Denied")
                return
            self.send_response(response.status)
            length = response.getheader("Content-Length")
            payload = b"" if length is not None else response.read()
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP | SET_BY_THE_GATE:
                    self.send_header(name, value)
            self.send_header("Content-Length", length if length is not None else str(len(payload)))
            self.end_headers()
            if self.command == "HEAD":
                return
            if payload:
                self.wfile.write(payload)
            while piece := response.read(PIECE):
                self.wfile.write(piece)
        finally:
            connection.close()

    def _refuse(self, service: str, code: str, message: str) -> None:
        if service == "s3":
            status = 403
            content_type = "application/xml"
            text = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{_xml(message)}'
                    f"</Message><RequestId>{uuid.uuid4().hex}</RequestId></Error>")
        else:
            status = 400
            content_type = "application/x-amz-json-1.0"
            coral = "AccessDeniedException" if code == "AccessDenied" else code
            text = json.dumps({"__type": f"com.amazon.coral.service#{coral}", "Message": message})
        data = b"" if self.command == "HEAD" else text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("x-amzn-RequestId", uuid.uuid4().hex)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _admin(self, body: bytes) -> None:
        gate = self.server.gate
        _, _, rest = self.path.partition(ADMIN)
        what, _, access_key = rest.partition("/")
        if self.command == "PUT" and what == "identities" and access_key:
            spec = json.loads(body)
            gate.identities[access_key] = Identity(spec["principal"], spec["policies"])
            self._json(204, None)
        elif self.command == "GET" and what == "decisions" and access_key:
            self._json(200, gate.decisions.get(access_key, []))
        else:
            self._json(404, {"error": f"no such gate endpoint: {self.command} {self.path}"})

    def _json(self, status: int, value: Any) -> None:
        data = b"" if value is None else json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class GateServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], gate: Gate) -> None:
        super().__init__(address, Handler)
        self.gate = gate


def register(endpoint: str, access_key: str, principal: str, policies: Sequence[Mapping[str, Any]]) -> None:
    """Makes `access_key` stand for an identity with exactly `policies` at the gate."""
    data = json.dumps({"principal": principal, "policies": list(policies)}).encode()
    request = urllib.request.Request(f"{endpoint}{ADMIN}identities/{access_key}", data=data, method="PUT")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 (the stack's own endpoint)
        pass


def decisions(endpoint: str, access_key: str) -> list[dict[str, str]]:
    with urllib.request.urlopen(f"{endpoint}{ADMIN}decisions/{access_key}", timeout=10) as response:  # noqa: S310
        found: list[dict[str, str]] = json.load(response)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.iamgate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="moto's endpoint")
    args = parser.parse_args()
    GateServer((args.host, args.port), Gate(args.upstream)).serve_forever()


if __name__ == "__main__":
    main()
