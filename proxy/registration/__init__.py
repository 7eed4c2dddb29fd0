"""Dynamic client registration (RFC 7591): every client is public."""
