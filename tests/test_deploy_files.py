"""The compose stack, the image and the config examples agree with what the code reads.

These read the files on any machine; tests/containers (`make test-containers`) builds the image and runs
the stack under podman.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from proxy.__main__ import parser
from proxy.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
KNOWN = {f"PROXY_{name.upper()}" for name in Settings.model_fields}


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def test_compose_has_the_facade_redis_and_the_dev_idp() -> None:
    """docker-compose.yml defines the facade, Redis and the dev IdP."""
    services = compose()["services"]
    assert {"facade", "redis", "devidp"} <= set(services)


def test_compose_env_names_are_settings_the_code_reads() -> None:
    """Every PROXY_* variable in the compose file is a real setting, and the facade's environment validates."""
    for name, service in compose()["services"].items():
        for variable in service.get("environment", {}):
            if variable.startswith("PROXY_"):
                assert variable in KNOWN, f"{name}: {variable} is not a setting"
    facade_env = compose()["services"]["facade"]["environment"]
    Settings(_env_file=None, **{k[6:].lower(): v for k, v in facade_env.items()})  # type: ignore[arg-type]


def test_compose_ports_and_addresses_line_up() -> None:
    """The compose file's ports, issuer, Redis host and dev IdP URL, network alias and credentials agree with
    each other."""
    services = compose()["services"]
    facade_env = services["facade"]["environment"]
    published = {entry.split(":")[1] for entry in services["facade"]["ports"]}
    assert facade_env["PROXY_PORT"] in published
    assert urlsplit(facade_env["PROXY_ISSUER"]).port == int(facade_env["PROXY_PORT"])
    assert urlsplit(facade_env["PROXY_REDIS_URL"]).hostname == "redis"
    devidp = services["devidp"]
    args = parser().parse_args(devidp["command"])
    assert args.public_url == facade_env["PROXY_UPSTREAM_ISSUER"]
    # Its own network identity (a network_mode shared with the facade dies with the facade's container):
    # the issuer's host is a *.localhost name (loopback for the browser, where the port is published) and,
    # inside the compose network, an alias of the devidp container.
    issuer = urlsplit(args.public_url)
    assert "network_mode" not in devidp
    assert issuer.hostname is not None and issuer.hostname.endswith(".localhost")
    assert issuer.hostname in devidp["networks"]["default"]["aliases"]
    assert f"{issuer.port}:{args.port}" in devidp["ports"]
    assert devidp["environment"]["PROXY_UPSTREAM_CLIENT_ID"] == facade_env["PROXY_UPSTREAM_CLIENT_ID"]
    assert devidp["environment"]["PROXY_UPSTREAM_CLIENT_SECRET"] == facade_env["PROXY_UPSTREAM_CLIENT_SECRET"]


def test_compose_redis_persists() -> None:
    """Redis in compose uses an append-only file on a volume, so restarts lose no grant."""
    redis = compose()["services"]["redis"]
    assert "--appendonly" in redis["command"] and "yes" in redis["command"]
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_dockerfile_is_small_non_root_with_a_healthcheck() -> None:
    """The Dockerfile is multi-stage on python:3.11-slim, runs as uid 10001, has a /healthz HEALTHCHECK and
    holds no secret."""
    text = (ROOT / "Dockerfile").read_text()
    assert text.count("FROM python:3.11-slim") == 2  # multi-stage
    assert re.search(r"^USER 10001$", text, re.M)
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert 'ENTRYPOINT ["oauth-facade"]' in text
    assert "SECRET" not in text.upper().replace("PROXY_UPSTREAM_CLIENT_SECRET", "")


def test_config_examples_only_name_known_settings() -> None:
    """Every PROXY_* name in config/*.env is a real setting."""
    examples = sorted((ROOT / "config").glob("*.env"))
    for path in examples:
        for line in path.read_text().splitlines():
            line = line.strip().removeprefix("#").strip()
            match = re.match(r"^(PROXY_[A-Z0-9_]+)=", line)
            if match:
                assert match.group(1) in KNOWN, f"{path.name}: {match.group(1)} is not a setting"


def test_compose_runs_the_image_on_a_read_only_root_with_a_tmpfs() -> None:
    """Every service built from the Dockerfile runs with a read-only root filesystem and a tmpfs /tmp (the
    image writes nothing at run time; tests/containers proves it in the running containers)."""
    built = {name: service for name, service in compose()["services"].items() if service.get("build") == "."}
    assert set(built) == {"facade", "devidp", "mcp"}
    for name, service in built.items():
        assert service.get("read_only") is True, name
        assert "/tmp" in service.get("tmpfs", []), name
