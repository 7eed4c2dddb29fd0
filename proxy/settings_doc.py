"""What `oauth-facade settings` prints: the effective values and their sources, or the README's table.

The README table is generated from the Settings fields (`settings --markdown`) so the two cannot drift.
The effective view answers "which value is the facade using, and why": each setting comes from the
environment, a dotenv file (`.env`, then `--env-file`, the later winning), or its default; this is
pydantic-settings' own order (environment over files over defaults). Secrets never print.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values
from pydantic import SecretStr

from proxy.settings import Settings
from proxy.store.connect import masked

MASK = "********"
ENV_PREFIX = "PROXY_"


def _default(name: str) -> str:
    field = Settings.model_fields[name]
    value = field.default
    if value is None or isinstance(value, SecretStr):
        return "(unset)"
    if isinstance(value, tuple):
        return " ".join(value) or "(empty)"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def markdown_table() -> str:
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        rows.append(f"| `PROXY_{name.upper()}` | `{_default(name)}` | {field.description or ''} |")
    return "\n".join(rows)


def shown_value(name: str, value: object) -> str:
    """A value as the operator typed it, with secrets (and a Redis URL's password) masked."""
    if value is None:
        return "(unset)"
    if isinstance(value, SecretStr):
        return MASK
    if name == "redis_url":
        return masked(str(value))
    if isinstance(value, tuple):
        return " ".join(value) or "(empty)"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def sources(env_file: str | Path | None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Setting name -> `environment`, `file <path>` or `default`, in pydantic-settings' precedence."""
    environ = os.environ if environ is None else environ
    env_names = {key.upper() for key in environ}
    files: list[Path] = [Path(".env")] + ([Path(env_file)] if env_file is not None else [])
    from_file: dict[str, str] = {}
    for path in files:
        if path.is_file():
            for key in dotenv_values(path):
                from_file[key.upper()] = f"file {path}"
    found = {}
    for name in Settings.model_fields:
        variable = ENV_PREFIX + name.upper()
        found[name] = "environment" if variable in env_names else from_file.get(variable, "default")
    return found


def effective_table(settings: Settings, env_file: str | Path | None = None,
                    environ: Mapping[str, str] | None = None) -> str:
    """One aligned line per setting: variable, effective value, where it came from."""
    origin = sources(env_file, environ)
    rows = [(f"{ENV_PREFIX}{name.upper()}", shown_value(name, getattr(settings, name)), origin[name])
            for name in Settings.model_fields]
    rows.insert(0, ("VARIABLE", "VALUE", "SOURCE"))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"{var:<{widths[0]}}  {value:<{widths[1]}}  {source}".rstrip() for var, value, source in rows)
