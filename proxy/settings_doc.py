"""The README's settings table, generated from the Settings fields so the two cannot drift."""

from __future__ import annotations

from pydantic import SecretStr

from proxy.settings import Settings


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
