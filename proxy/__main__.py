"""The `oauth-facade` command: serve (default), check, keys generate|rotate, devidp, settings, grants.

A configuration problem is one line on stderr naming the variable, and exit code 2; never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from proxy.settings import Settings, SettingsError, load_settings

EXIT_CONFIG = 2


def _settings(args: argparse.Namespace) -> Settings:
    from proxy.upstream.profiles import coherent

    return coherent(load_settings(env_file=args.env_file))


def _serve(args: argparse.Namespace) -> int:
    from proxy.serve import serve

    return serve(_settings(args), workers=args.workers)


def _check(args: argparse.Namespace) -> int:
    from proxy.check import run_check

    return run_check(_settings(args))


def _keys(args: argparse.Namespace) -> int:
    from proxy.keys.cli import generate_command, rotate_command

    if args.keys_command == "generate":
        return generate_command(args.alg, args.format, args.out)
    return rotate_command(args.file, args.alg, args.keep, create=args.create)


def _devidp(args: argparse.Namespace) -> int:
    from proxy.serve import serve_devidp

    return serve_devidp(_settings(args), host=args.host, port=args.port, public_url=args.public_url)


def _clients(args: argparse.Namespace) -> int:
    from proxy.clients.secrets import hash_secret, new_secret

    secret = sys.stdin.readline().rstrip("\n") if args.stdin else new_secret()
    if not secret:
        print("oauth-facade: an empty secret cannot be hashed", file=sys.stderr)
        return EXIT_CONFIG
    if not args.stdin:
        print(f"client secret (give it to the client, it is not stored): {secret}", file=sys.stderr)
    print(hash_secret(secret))
    return 0


def _grants(args: argparse.Namespace) -> int:
    from proxy.grants_cli import run

    return run(_settings(args), args.grants_command, sub=args.sub, client_id=args.client,
               family=getattr(args, "family", None), as_json=args.json)


def _settings_table(args: argparse.Namespace) -> int:
    from proxy.settings_doc import effective_table, markdown_table

    if args.markdown:
        print(markdown_table())
        return 0
    from proxy.upstream.profiles import coherent

    settings = load_settings(env_file=args.env_file)
    print(effective_table(settings, env_file=args.env_file))  # shown even when incoherent: it helps find why
    coherent(settings)
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="oauth-facade", description=__doc__)
    root.add_argument("--env-file", help="read PROXY_* settings from this file too (e.g. config/clerk.env)")
    sub = root.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the facade (the default)")
    serve.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    serve.set_defaults(func=_serve)
    sub.add_parser("check", help="check the settings, the store, the key file and the upstream IdP"
                   ).set_defaults(func=_check)
    keys = sub.add_parser("keys", help="signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    gen = keys_sub.add_parser("generate", help="write a new private key")
    gen.add_argument("--alg", default="RS256", choices=["RS256", "PS256", "ES256"])
    gen.add_argument("--format", default="jwks", choices=["pem", "jwk", "jwks"])
    gen.add_argument("--out", type=Path, help="file to write (default: stdout)")
    rot = keys_sub.add_parser("rotate", help="put a new key in front of a JWKS file; the old ones stay published")
    rot.add_argument("file", type=Path)
    rot.add_argument("--alg", default="RS256", choices=["RS256", "PS256", "ES256"])
    rot.add_argument("--keep", type=int, default=3, help="keys kept in the file, newest first")
    rot.add_argument("--create", action="store_true", help="start a new key file when FILE does not exist")
    keys.set_defaults(func=_keys)
    dev = sub.add_parser("devidp", help="run the bundled development IdP on its own port")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=9000)
    dev.add_argument("--public-url", help="its issuer URL (default http://HOST:PORT)")
    dev.set_defaults(func=_devidp)
    clients = sub.add_parser("clients", help="pre-registered clients (PROXY_CLIENTS_FILE)")
    clients_sub = clients.add_subparsers(dest="clients_command", required=True)
    hashing = clients_sub.add_parser("hash-secret", help="print a secret_hash for the clients file; "
                                     "a new secret goes to stderr unless --stdin gives one")
    hashing.add_argument("--stdin", action="store_true", help="hash the secret read from one line of stdin")
    clients.set_defaults(func=_clients)
    grants = sub.add_parser("grants", help="list and end users' grants (refresh families) in the store")
    grants_sub = grants.add_subparsers(dest="grants_command", required=True)
    listing = grants_sub.add_parser("list", help="every live grant, of one subject and/or client")
    listing.add_argument("--sub", help="only this subject's grants")
    listing.add_argument("--client", help="only this client_id's grants")
    listing.add_argument("--json", action="store_true", help="a JSON array instead of a table")
    ending = grants_sub.add_parser("revoke", help="end grants as a revocation does (upstream grant included), "
                                   "and the subject's or client's remembered consent approvals")
    which = ending.add_mutually_exclusive_group(required=True)
    which.add_argument("--family", help="one grant, by its family id (the `family` column, the tokens' `sid`)")
    which.add_argument("--sub", help="every grant of this subject")
    which.add_argument("--client", help="every grant of this client_id")
    ending.add_argument("--json", action="store_true", help="a JSON array of what was ended")
    grants.set_defaults(func=_grants)
    shown = sub.add_parser("settings", help="print every setting's effective value and where it came from")
    shown.add_argument("--markdown", action="store_true",
                       help="print the defaults as the README's markdown table instead")
    shown.set_defaults(func=_settings_table)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        args.workers = 1
        func = _serve
    try:
        return int(func(args))
    except SettingsError as exc:
        print(f"oauth-facade: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `oauth-facade settings | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
