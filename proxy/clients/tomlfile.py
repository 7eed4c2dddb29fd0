"""The operator's TOML files (pre-registered clients, resource servers): an array of tables, nothing else.

Both files are read once at start-up and by `oauth-facade check`; a problem is one sentence naming the
file, raised as the caller's own error class so each setting keeps its own message prefix.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


def array_of_tables(path: Path | str, table: str, error: type[ValueError]) -> list[Any]:
    """The `[[table]]` entries of the file at `path` (none when it has none); `error` for an unreadable
    file, a file that is not TOML, any other top-level key, or `table` given as something else."""
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML ({exc})") from None
    unknown = set(document) - {table}
    if unknown:
        raise error(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}; use [[{table}]]")
    entries = document.get(table, [])
    if not isinstance(entries, list):
        raise error(f"{path}: use [[{table}]] tables")
    return entries
