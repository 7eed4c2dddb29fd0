"""Acting on the upstream error policy: one failed upstream call -> its class, a log line, a metric, and
the error the facade answers with. Callers decide only what a terminal failure ends (a family, a sign-in).

The log never carries a token: only the step, the class, the bounded cause and the private detail (which
the client module builds from status lines and error codes, never from bodies or credentials).
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.errors import InvalidGrant, OAuthError, UpstreamError, UpstreamMisconfigured, UpstreamUnavailable
from proxy.log import get_logger
from proxy.metrics import UPSTREAM_FAILURES
from proxy.upstream.policy import Outcome, UpstreamClass, classify

log = get_logger()

# What the operator should look at, by cause (the log line's `hint`).
HINTS = {
    "invalid_client": "the IdP rejects PROXY_UPSTREAM_CLIENT_ID/SECRET: run `oauth-facade check`",
    "incorrect_client_credentials": "the IdP rejects PROXY_UPSTREAM_CLIENT_ID/SECRET: run `oauth-facade check`",
    "unauthorized_client": "enable this grant type for the facade's client at the IdP",
    "unsupported_grant_type": "enable this grant type for the facade's client at the IdP",
    "redirect_uri_mismatch": "register the facade's /callback at the IdP",
}


@dataclass(frozen=True, slots=True)
class Judgement:
    upstream_class: UpstreamClass
    outcome: Outcome
    error: OAuthError  # what the facade answers, unless the caller maps a terminal failure itself

    @property
    def terminal(self) -> bool:
        return self.upstream_class is UpstreamClass.TERMINAL


def outcome_of(exc: UpstreamError) -> Outcome:
    """The failure's outcome; one the client module did not describe (a bad id_token, a discovery
    document of another issuer) is the facade's configuration or an unusable IdP: operator."""
    if isinstance(exc.outcome, Outcome):
        return exc.outcome
    if isinstance(exc, UpstreamUnavailable):
        return Outcome("document", "unreachable")
    return Outcome("document", "answer", None, "unusable_answer")


def judged(exc: UpstreamError, step: str) -> Judgement:
    """Classify, log once and count one failed upstream call made at `step`."""
    outcome = outcome_of(exc)
    upstream_class = classify(outcome)
    cause = outcome.cause if outcome.error != "unusable_answer" else "unusable_answer"
    UPSTREAM_FAILURES.labels(step, upstream_class.value, cause).inc()
    error: OAuthError
    if upstream_class is UpstreamClass.OPERATOR:
        log.error("upstream.misconfigured", step=step, cause=cause, detail=exc.detail,
                  hint=HINTS.get(cause, "the IdP refuses the facade's request: run `oauth-facade check`"))
        error = UpstreamMisconfigured(detail=exc.detail, outcome=outcome)
    elif upstream_class is UpstreamClass.TRANSIENT:
        log.warning("upstream.unavailable", step=step, cause=cause, detail=exc.detail,
                    retry_after_s=outcome.retry_after_s)
        error = UpstreamUnavailable(detail=exc.detail, outcome=outcome, retry_after_s=outcome.retry_after_s)
    else:
        log.info("upstream.grant_ended", step=step, cause=cause)
        error = InvalidGrant(detail=f"{step}: the upstream grant ended ({cause})")
    return Judgement(upstream_class, outcome, error)
