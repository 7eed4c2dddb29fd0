"""The processes the bench measures besides the facade itself: ceiling, stub IdP, bare baseline, FastMCP.

Each module is run as its own process (`python -m bench.servers.<name> --port N ...`) so that its CPU
time can be read from /proc and never mixes with the load generator's.
"""
