"""`oauth-facade keys generate|rotate`: the operator's side of key rotation (see README).

A file that cannot be written is one line on stderr and exit code 1, never a traceback; `rotate` on a
path that does not exist refuses (exit 2) unless `--create` says a new key file is meant.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from proxy.keys.keyset import KeyFileError, SigningKey, generate, parse_keys, render_jwks

EXIT_IO = 1
EXIT_USAGE = 2


def _fail(text: str, code: int) -> int:
    print(f"oauth-facade: {text}", file=sys.stderr)
    return code


def _parent(path: Path) -> str | None:
    """Create a missing parent directory, private to the owner (mode 700): it will hold private keys.
    None when the directory is there, else why it cannot be."""
    parent = path.parent
    if parent.is_dir():
        return None
    try:
        parent.mkdir(parents=True, mode=0o700)
    except OSError as exc:
        return f"cannot create the directory {parent}: {exc.strerror or exc}"
    print(f"created {parent} (mode 700)", file=sys.stderr)
    return None


def _write(path: Path | None, text: str) -> str | None:
    """Write atomically with mode 600; None on success, else the one line saying why not."""
    if path is None:
        sys.stdout.write(text)
        return None
    problem = _parent(path)
    if problem is not None:
        return problem
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        return f"cannot write {path}: {exc.strerror or exc}"
    return None


def render(key: SigningKey, fmt: str) -> str:
    if fmt == "pem":
        return key.key.as_pem(private=True).decode()
    if fmt == "jwk":
        return json.dumps(key.private_jwk(), indent=2) + "\n"
    return json.dumps({"keys": [key.private_jwk()]}, indent=2) + "\n"


def generate_command(alg: str, fmt: str, out: Path | None) -> int:
    problem = _write(out, render(generate(alg), fmt))
    if problem is not None:
        return _fail(problem, EXIT_IO)
    if out is not None:
        print(f"wrote a new {alg} key to {out} (mode 600)", file=sys.stderr)
    return 0


def rotate_command(path: Path, alg: str, keep: int, *, create: bool = False) -> int:
    """Prepend a new key: it signs from the next start; the others stay in /jwks until dropped."""
    if not path.exists() and not create:
        return _fail(f"{path} does not exist: nothing to rotate (a typo? `keys rotate --create {path}` "
                     "starts a new key file there)", EXIT_USAGE)
    try:
        existing = parse_keys(path.read_bytes()) if path.exists() else []
    except KeyFileError as exc:
        return _fail(f"{path}: {exc}", EXIT_USAGE)
    except OSError as exc:
        return _fail(f"cannot read {path}: {exc.strerror or exc}", EXIT_IO)
    keys = [generate(alg), *existing][: max(1, keep)]
    problem = _write(path, json.dumps(json.loads(render_jwks(keys)), indent=2) + "\n")
    if problem is not None:
        return _fail(problem, EXIT_IO)
    print(f"{path}: {keys[0].kid} now signs; {len(keys) - 1} older key(s) still published", file=sys.stderr)
    return 0
