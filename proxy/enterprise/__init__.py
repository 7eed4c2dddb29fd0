"""Enterprise-managed authorization (MCP's Enterprise-Managed Authorization extension, SEP-990): the
enterprise IdPs an operator trusts (`PROXY_ENTERPRISE_IDPS_FILE`) and what their Identity Assertion JWT
Authorization Grants (ID-JAG) must say. Nothing here knows an HTTP endpoint: the jwt-bearer grant in
proxy/token/grants/ uses it, `oauth-facade check` validates it."""
