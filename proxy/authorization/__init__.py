"""The authorization endpoint: validate the client's request, ask consent, send the browser upstream."""
