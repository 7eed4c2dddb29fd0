"""`oauth-facade keys generate|rotate`: the operator's side of key rotation (see README)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from proxy.keys.keyset import KeyFileError, SigningKey, generate, parse_keys, render_jwks


def _write(path: Path | None, text: str) -> None:
    if path is None:
        sys.stdout.write(text)
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def render(key: SigningKey, fmt: str) -> str:
    if fmt == "pem":
        return key.key.as_pem(private=True).decode()
    if fmt == "jwk":
        return json.dumps(key.private_jwk(), indent=2) + "\n"
    return json.dumps({"keys": [key.private_jwk()]}, indent=2) + "\n"


def generate_command(alg: str, fmt: str, out: Path | None) -> int:
    _write(out, render(generate(alg), fmt))
    if out is not None:
        print(f"wrote a new {alg} key to {out} (mode 600)", file=sys.stderr)
    return 0


def rotate_command(path: Path, alg: str, keep: int) -> int:
    """Prepend a new key: it signs from the next start; the others stay in /jwks until dropped."""
    try:
        existing = parse_keys(path.read_bytes()) if path.exists() else []
    except KeyFileError as exc:
        print(f"oauth-facade: {path}: {exc}", file=sys.stderr)
        return 2
    keys = [generate(alg), *existing][: max(1, keep)]
    _write(path, json.dumps(json.loads(render_jwks(keys)), indent=2) + "\n")
    print(f"{path}: {keys[0].kid} now signs; {len(keys) - 1} older key(s) still published", file=sys.stderr)
    return 0
