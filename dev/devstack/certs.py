"""A small certificate authority made with openssl, for the apiserver and Kafka's TLS listener."""

from __future__ import annotations

from pathlib import Path

from devstack.processes import run_checked

DAYS = "3650"


def ensure_ca(directory: Path, common_name: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    crt, key = directory / "ca.crt", directory / "ca.key"
    if not crt.exists():
        run_checked(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
             "-out", str(crt), "-days", DAYS, "-subj", f"/CN={common_name}"],
            what=f"creating the CA {common_name}",
        )
    return crt, key


def ensure_cert(
    directory: Path,
    name: str,
    *,
    subject: str,
    server_names: list[str] | None = None,
    client: bool = False,
) -> tuple[Path, Path]:
    """Issues `name`.crt/.key signed by the CA in `directory`, once."""
    ca_crt, ca_key = directory / "ca.crt", directory / "ca.key"
    crt, key, csr, ext = (directory / f"{name}.{s}" for s in ("crt", "key", "csr", "ext"))
    if crt.exists():
        return crt, key
    run_checked(
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
         "-subj", subject],
        what=f"creating the key of {name}",
    )
    lines = [f"extendedKeyUsage={'clientAuth' if client else 'serverAuth'}"]
    if server_names:
        lines.append("subjectAltName=" + ",".join(server_names))
    ext.write_text("\n".join(lines) + "\n")
    run_checked(
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
         "-CAcreateserial", "-days", DAYS, "-extfile", str(ext), "-out", str(crt)],
        what=f"signing the certificate of {name}",
    )
    csr.unlink()
    ext.unlink()
    return crt, key


def ensure_rsa_keypair(private: Path, public: Path) -> None:
    if private.exists() and public.exists():
        return
    run_checked(["openssl", "genrsa", "-out", str(private), "2048"], what="creating an RSA key")
    run_checked(
        ["openssl", "rsa", "-in", str(private), "-pubout", "-out", str(public)],
        what="extracting an RSA public key",
    )


def ensure_pkcs12(crt: Path, key: Path, ca_crt: Path, out: Path, password: str) -> Path:
    if not out.exists():
        run_checked(
            ["openssl", "pkcs12", "-export", "-in", str(crt), "-inkey", str(key), "-certfile", str(ca_crt),
             "-name", "broker", "-out", str(out), "-passout", f"pass:{password}"],
            what=f"packing {out.name}",
        )
    return out
