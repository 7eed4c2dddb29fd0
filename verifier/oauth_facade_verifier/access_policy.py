"""Access policy beyond scopes: who may use which protected resource and which tool (PROXY_POLICY_FILE).

One small TOML file beside the other operator files. Each `[[rule]]` says which requests it covers and
who may make them; a request must satisfy every rule that covers it (rules only ever take access away:
scopes and the token's audience are checked first, as always). No rule covering a request: allowed.

    filter_tools_list = true          # the gateway drops from `tools/list` answers the tools a caller may not call

    [[rule]]
    name = "deployers"                # shown in the 403's error_description and the audit trail
    resource = "https://mcp.example.com/mcp"   # optional: every protected resource
    tools = ["deploy", "wipe"]        # optional: only `tools/call` of these; without: every request
    # who may (each key given must hold; any one value of a list is enough):
    subjects = ["user_2abc"]          # the token's `sub`
    email_domains = ["example.com"]   # the domain of the user's *verified* email
    groups = ["ops", "org_123"]       # upstream groups / roles / organisations (see below)
    client_kinds = ["pre-registered"] # dcr | cimd | pre-registered | machine
    client_ids = ["claude-desktop"]   # the token's `client_id`

The attributes come from the access token, so the gateway, forward-auth and the Python verifier
(`BearerAuth(access_policy=...)`) decide alike from the same bytes: with a policy file the facade adds
to the tokens it mints `email_domain` (only of a verified email), `groups` (RFC 9068 §2.2.3.1: the
upstream's `groups` and `roles`, and Clerk's `org_id`/`org_slug`, as far as the profile passes them on)
and `client_kind`. A token minted without them (before the policy file) satisfies no rule that asks
for them: fail closed.

This module knows no HTTP, no store and nothing of the facade but the token's claims, so it travels
with the validation core (proxy/resource/core.py) to any resource server.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOOLS_CALL = "tools/call"
CLIENT_KINDS = frozenset({"dcr", "cimd", "pre-registered", "machine"})
#: Upstream claims whose values count as groups (lists of strings, or one string).
GROUP_CLAIMS = ("groups", "roles", "org_id", "org_slug")
_CONDITIONS = ("subjects", "email_domains", "groups", "client_kinds", "client_ids")
_RULE_KEYS = frozenset({"name", "resource", "tools", *_CONDITIONS})


class PolicyFileError(Exception):
    """The policy file cannot be used; the message names what is wrong (and where)."""


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    resource: str | None
    tools: frozenset[str] | None
    subjects: frozenset[str] | None = None
    email_domains: frozenset[str] | None = None
    groups: frozenset[str] | None = None
    client_kinds: frozenset[str] | None = None
    client_ids: frozenset[str] | None = None

    def covers(self, resource: str, calls: Iterable[tuple[str, str | None]] | None) -> bool:
        """True when the rule is about this request. `calls` None: the calls are not known (a proxy that
        forwards headers only, without `Mcp-Method`): every tool rule covers it (fail closed)."""
        if self.resource is not None and self.resource.rstrip("/") != resource.rstrip("/"):
            return False
        if self.tools is None or calls is None:
            return True
        return any(method == TOOLS_CALL and name in self.tools for method, name in calls)

    def admits(self, claims: Mapping[str, Any]) -> bool:
        """Each condition the rule sets holds for the token's claims."""
        checks = (
            (self.subjects, {claims.get("sub")}),
            (self.email_domains, {claims.get("email_domain")}),
            (self.groups, set(_strings(claims.get("groups")))),
            (self.client_kinds, {claims.get("client_kind")}),
            (self.client_ids, {claims.get("client_id")}),
        )
        return all(wanted is None or bool(wanted & {value for value in held if isinstance(value, str)})
                   for wanted, held in checks)


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    rules: tuple[Rule, ...] = ()
    filter_tools_list: bool = False

    def denial(self, claims: Mapping[str, Any], resource: str,
               calls: Iterable[tuple[str, str | None]] | None) -> Rule | None:
        """The first rule covering the request that the caller does not satisfy, or None (allowed)."""
        listed = None if calls is None else list(calls)
        return next((rule for rule in self.rules if rule.covers(resource, listed) and not rule.admits(claims)),
                    None)

    def may_call(self, claims: Mapping[str, Any], resource: str, tool: str) -> bool:
        """Whether `tools/call` of `tool` would be allowed (for filtering `tools/list`)."""
        return self.denial(claims, resource, [(TOOLS_CALL, tool)]) is None

    @property
    def has_tool_rules(self) -> bool:
        return any(rule.tools is not None for rule in self.rules)


def describe_denial(rule: Rule) -> str:
    return f"access denied by policy rule {rule.name!r}"


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str)]
    return []


def _words(entry: Mapping[str, Any], key: str, where: str) -> frozenset[str] | None:
    if key not in entry:
        return None
    value = entry[key]
    if not isinstance(value, list) or not value or not all(isinstance(item, str) and item for item in value):
        raise PolicyFileError(f"{where}: {key} must be a non-empty list of non-empty strings")
    return frozenset(value)


def parse_policy(text: str, *, resources: Iterable[str] | None = None) -> AccessPolicy:
    """The policy in `text`; `resources`, when given, are the protected resources a rule may name."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyFileError(f"not TOML: {exc}") from None
    unknown = set(document) - {"rule", "filter_tools_list"}
    if unknown:
        raise PolicyFileError(f"unknown top-level keys: {', '.join(sorted(unknown))}")
    filter_tools = document.get("filter_tools_list", False)
    if not isinstance(filter_tools, bool):
        raise PolicyFileError("filter_tools_list must be true or false")
    entries = document.get("rule", [])
    if not isinstance(entries, list):
        raise PolicyFileError("rules are [[rule]] tables")
    known = {url.rstrip("/") for url in resources} if resources is not None else None
    rules = []
    for index, entry in enumerate(entries, start=1):
        where = f"rule {index}"
        extra = set(entry) - _RULE_KEYS
        if extra:
            raise PolicyFileError(f"{where}: unknown keys {', '.join(sorted(extra))}")
        name = entry.get("name", str(index))
        resource = entry.get("resource")
        if not isinstance(name, str) or (resource is not None and not isinstance(resource, str)):
            raise PolicyFileError(f"{where}: name and resource must be strings")
        if resource is not None and known is not None and resource.rstrip("/") not in known:
            raise PolicyFileError(f"{where}: {resource} is not a protected resource (PROXY_RESOURCES)")
        conditions = {key: _words(entry, key, where) for key in _CONDITIONS}
        if all(value is None for value in conditions.values()):
            raise PolicyFileError(f"{where}: names nobody who may (subjects, email_domains, groups, client_kinds "
                                  "or client_ids); to shut a tool off for everyone, remove it from the server")
        kinds = conditions["client_kinds"]
        if kinds is not None and not kinds <= CLIENT_KINDS:
            raise PolicyFileError(f"{where}: client_kinds are {', '.join(sorted(CLIENT_KINDS))}")
        domains = conditions["email_domains"]
        if domains is not None:
            conditions["email_domains"] = frozenset(domain.lower() for domain in domains)
        rules.append(Rule(name=name, resource=resource, tools=_words(entry, "tools", where), **conditions))
    return AccessPolicy(tuple(rules), filter_tools)


def load_policy(path: Path, *, resources: Iterable[str] | None = None) -> AccessPolicy:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyFileError(f"cannot read {path}: {exc}") from None
    return parse_policy(text, resources=resources)


def token_attributes(claims: Mapping[str, Any], client_kind: str) -> dict[str, Any]:
    """What the facade adds to an access token for the policy to read: the verified email's domain, the
    upstream groups (RFC 9068 §2.2.3.1 `groups`) and the client's kind. Only what is present."""
    attributes: dict[str, Any] = {"client_kind": client_kind}
    email = claims.get("email")
    if isinstance(email, str) and "@" in email and claims.get("email_verified") in (True, "true"):
        attributes["email_domain"] = email.rpartition("@")[2].lower()
    groups = list(dict.fromkeys(group for name in GROUP_CLAIMS for group in _strings(claims.get(name))))
    if groups:
        attributes["groups"] = groups
    return attributes


__all__ = ["AccessPolicy", "PolicyFileError", "Rule", "describe_denial", "load_policy", "parse_policy",
           "token_attributes"]
