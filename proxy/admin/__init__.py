"""What operators do to the facade's state from outside a flow: list and end grants (CLI and admin API)."""
