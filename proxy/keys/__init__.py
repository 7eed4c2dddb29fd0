"""Signing keys: the facade's own, served at /jwks."""

from proxy.keys.keyset import KeyFileError, Keyset, SigningKey, generate, parse_keys, render_jwks

__all__ = ["KeyFileError", "Keyset", "SigningKey", "generate", "parse_keys", "render_jwks"]
