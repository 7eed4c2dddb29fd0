"""JSON that means one thing to every reader: moved to the verifier distribution, which the ASGI guard
needs it in (`oauth_facade_verifier.strictjson`); the facade's modules keep importing it from here."""

from oauth_facade_verifier.strictjson import MAX_DEPTH, DuplicateMember, TooDeep, check_depth, loads

__all__ = ["MAX_DEPTH", "DuplicateMember", "TooDeep", "check_depth", "loads"]
