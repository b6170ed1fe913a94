"""Kubeconfig files for the stack's clients: the admin, the kubelets, ServiceAccounts."""

from __future__ import annotations

from pathlib import Path


def write(path: Path, *, server: str, ca: Path, user: dict[str, str]) -> Path:
    user_lines = "".join(f"      {k}: {v}\n" for k, v in user.items())
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: csvkafka-dev\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n"
        f"users:\n- name: user\n  user:\n{user_lines}"
        "contexts:\n- name: csvkafka-dev\n  context:\n    cluster: csvkafka-dev\n    user: user\n"
        "current-context: csvkafka-dev\n"
    )
    path.chmod(0o600)
    return path
