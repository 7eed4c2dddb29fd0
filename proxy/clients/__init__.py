"""Clients the facade knows without a registration: Client ID Metadata Documents (an https URL is the
client_id) and operator-defined clients from `PROXY_CLIENTS_FILE`. Nothing here knows an HTTP endpoint."""
