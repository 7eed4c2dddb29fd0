"""A scripted browser: what a person's browser does between a client's authorize URL and its redirect URI.

It keeps cookies, follows redirects one by one (so each hop can be reported), and submits each HTML
form it is shown: the facade's consent page (it presses "Allow") and oidc-provider's login and consent
pages (it types a login name and a password). It stops, without requesting it, at the first URL under
the client's redirect URI, like a native app's loopback listener would receive it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin

import aiohttp

MAX_HOPS = 25
APPROVE_WORDS = ("approve", "allow", "accept", "yes", "continue")


@dataclass
class Form:
    """The first form of a page: where it posts, its fields, and the submit buttons that carry a value."""

    action: str = ""
    method: str = "get"
    fields: dict[str, str] = field(default_factory=dict)
    text_inputs: list[str] = field(default_factory=list)
    password_inputs: list[str] = field(default_factory=list)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _FormParser(HTMLParser):
    """Collects the first <form> of a page; enough HTML for login and consent pages, nothing more."""

    def __init__(self) -> None:
        super().__init__()
        self.form: Form | None = None
        self._inside = False
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and not self._done and self.form is None:
            self.form = Form(action=values.get("action", ""), method=values.get("method", "get").lower())
            self._inside = True
        elif self._inside and self.form is not None and tag in ("input", "button"):
            kind = values.get("type", "submit" if tag == "button" else "text").lower()
            name = values.get("name", "")
            if kind == "submit":
                if name:
                    self.form.buttons.append((name, values.get("value", "")))
            elif kind == "hidden" and name:
                self.form.fields[name] = values.get("value", "")
            elif kind in ("text", "email") and name:
                self.form.text_inputs.append(name)
            elif kind == "password" and name:
                self.form.password_inputs.append(name)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._inside:
            self._inside = False
            self._done = True


def first_form(html: str) -> Form | None:
    parser = _FormParser()
    parser.feed(html)
    return parser.form


class BrowserError(AssertionError):
    """The sign-in stopped somewhere: the message names the hop and quotes the server's answer."""


@dataclass
class Hop:
    method: str
    url: str
    status: int


class Browser:
    """One person's browser session (one cookie jar), signing in as `login`."""

    def __init__(self, *, login: str = "alice", password: str = "any password") -> None:
        self.login = login
        self.password = password
        self.hops: list[Hop] = []

    async def authorize(self, url: str, *, stop_at: str) -> str:
        """Walk from `url` until a redirect to `stop_at`; return that final URL (with code, state, iss)."""
        # unsafe=True: keep cookies for IP-address hosts (everything here is on 127.0.0.1).
        jar = aiohttp.CookieJar(unsafe=True)
        timeout = aiohttp.ClientTimeout(total=20)
        async with aiohttp.ClientSession(cookie_jar=jar, timeout=timeout) as session:
            method: str = "GET"
            data: dict[str, str] | None = None
            for _ in range(MAX_HOPS):
                try:
                    response = await session.request(method, url, data=data, allow_redirects=False)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise BrowserError(self._report(f"{method} {url} failed: {type(exc).__name__}: {exc}", "")) from exc
                async with response:
                    body = await response.text(errors="replace")
                    self.hops.append(Hop(method, url, response.status))
                    location = response.headers.get("Location")
                    if response.status in (301, 302, 303, 307, 308) and location:
                        target = urljoin(url, location)
                        if target.startswith(stop_at):
                            return target
                        method, url, data = "GET", target, None
                        continue
                    if response.status == 200 and (form := first_form(body)) is not None:
                        method, url, data = self._submit(form, url)
                        continue
                    raise BrowserError(self._report(f"{method} {url} answered HTTP {response.status}", body))
            raise BrowserError(self._report(f"more than {MAX_HOPS} hops without reaching {stop_at}", ""))

    def _submit(self, form: Form, page_url: str) -> tuple[str, str, dict[str, str] | None]:
        """Fill the form as a person would: the login name and password, then the approving button."""
        data = dict(form.fields)
        for name in form.text_inputs:
            data[name] = self.login
        for name in form.password_inputs:
            data[name] = self.password
        if form.buttons:
            chosen = next((b for b in form.buttons if b[1].lower() in APPROVE_WORDS), form.buttons[0])
            data[chosen[0]] = chosen[1]
        action = urljoin(page_url, form.action)
        if form.method == "post":
            return "POST", action, data
        return "GET", f"{action.split('?')[0]}?{urlencode(data)}", None

    def _report(self, what: str, body: str) -> str:
        trail = " -> ".join(f"{hop.method} {hop.url.split('?')[0]} [{hop.status}]" for hop in self.hops)
        return f"scripted browser: {what}\n  body: {body[:1500]}\n  hops: {trail}"
