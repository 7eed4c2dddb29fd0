"""Discovery: RFC 8414 and OIDC metadata, RFC 9728 protected-resource metadata, the JWKS."""
