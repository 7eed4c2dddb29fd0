"""The token endpoint and what follows it: grants, revocation, introspection, userinfo."""
