"""Access policy beyond scopes (PROXY_POLICY_FILE). The evaluator lives in the verifier distribution
(`oauth_facade_verifier.access_policy`), so the gateway, forward-auth and the Python verifier decide with one
piece of code; `proxy.access_policy` is that very module (one module object, shared classes)."""

import sys

from oauth_facade_verifier import access_policy

sys.modules[__name__] = access_policy
