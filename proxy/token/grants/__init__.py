"""One module per grant type: PARAMS and handle()."""
