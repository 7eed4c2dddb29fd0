"""Callback from the upstream IdP."""
