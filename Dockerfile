# oauth-facade: a small image. Build stage makes a venv; the runtime stage copies only the venv.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proxy ./proxy
# The facade depends on the verifier distribution (verifier/): installed from the source tree with it.
COPY verifier/pyproject.toml verifier/README.md ./verifier/
COPY verifier/oauth_facade_verifier ./verifier/oauth_facade_verifier
RUN python -m venv /venv && /venv/bin/pip install ./verifier '.[speed]'

FROM python:3.11-slim
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 PROXY_HOST=0.0.0.0 PROXY_PORT=8080
RUN useradd --system --uid 10001 --no-create-home facade
USER 10001
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PROXY_PORT', '8080'), timeout=2)"]
ENTRYPOINT ["oauth-facade"]
CMD ["serve"]
