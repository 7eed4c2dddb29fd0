"""The benchmark suite: `python -m bench` (or `make bench`).

It starts, in one run, a bare aiohttp hello-JSON server (the ceiling), a stub upstream IdP, a real
redis-server, the facade exactly as users start it, a bare implementation doing only the facade's
Redis commands, upstream calls and signatures, and optionally FastMCP's OAuthProxy; then it drives
each with a load generator in its own process and prints every figure as a ratio to the ceiling
measured in the same run. See bench/README.md.
"""
