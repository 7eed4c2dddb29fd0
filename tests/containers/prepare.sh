#!/usr/bin/env bash
# Stand-ins for the two base images the Dockerfile and docker-compose.yml name, made without a registry.
#
# This machine kind has no container registry, so `python:3.11-slim` and `redis:7-alpine` cannot be pulled.
# This script makes them from Debian packages (see /work/shared/notes/containers.md, the measured recipe):
#   docker.io/library/python:3.11-slim  Debian bookworm made by debootstrap (python3 3.11, as in the official
#                                        image, but at /usr/bin rather than /usr/local/bin)
#   docker.io/library/redis:7-alpine    that base plus Debian's redis-server 7.0, with a /usr/local/bin shim
#                                        turning protected mode off as the official image does
# They are test fixtures, not part of the product. Each is labelled with a hash of its recipe (below):
# an image whose label matches is kept, and the debootstrap tree (the slow part, ~80 s) is cached under
# $CACHE as a tarball named by that hash, so a second run takes seconds.
set -euo pipefail

PODMAN=(podman --runtime "$(command -v runc)")
CACHE=${OAUTH_FACADE_CONTAINER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/oauth-facade-containers}
BASE=docker.io/library/python:3.11-slim
REDIS=docker.io/library/redis:7-alpine
LABEL=org.oauth-facade.test-recipe

mirror() {  # The Debian mirror the host's apt uses (deb822 or one-line format), else Debian's own.
  local uri
  uri=$(grep -hoE '^URIs:\s*\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1 \
        | awk '{print $2}') || true
  [ -n "$uri" ] || uri=$(grep -hoE '^deb\s+\S+' /etc/apt/sources.list 2>/dev/null | grep -v security | head -1 \
        | awk '{print $2}') || true
  echo "${uri:-http://deb.debian.org/debian}"
}

current() {  # true when image $1 exists and carries the label $2
  [ "$("${PODMAN[@]}" image inspect --format "{{ index .Labels \"$LABEL\" }}" "$1" 2>/dev/null)" = "$2" ]
}

base_image() {
  if current "$BASE" "$RECIPE"; then echo "$BASE: up to date ($RECIPE)"; return; fi
  mkdir -p "$CACHE"
  local tarball="$CACHE/bookworm-$RECIPE.tar"
  if [ ! -s "$tarball" ]; then
    local root
    root=$(mktemp -d "$CACHE/root.XXXXXX")
    echo "$BASE: debootstrap bookworm from $MIRROR (about 80 s)"
    debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
      bookworm "$root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
      || { tail -20 "$CACHE/debootstrap.log"; rm -rf "$root"; exit 1; }
    # The host's CA bundle, so pip inside a build trusts what the host trusts.
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    rm -rf "$root"
    find "$CACHE" -maxdepth 1 -name 'bookworm-*.tar' ! -name "bookworm-$RECIPE.tar" -delete
  fi
  "${PODMAN[@]}" import --quiet --change "LABEL $LABEL=$RECIPE" --change 'CMD ["python3"]' "$tarball" "$BASE" >/dev/null
  echo "$BASE: imported from $tarball"
}

redis_image() {
  if current "$REDIS" "$RECIPE"; then echo "$REDIS: up to date ($RECIPE)"; return; fi
  local context
  context=$(mktemp -d)
  cat >"$context/Containerfile" <<CONTAINERFILE
FROM $BASE
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server \\
    && rm -rf /var/lib/apt/lists/* && mkdir -p /data
RUN printf '#!/bin/sh\nexec /usr/bin/redis-server "\$@" --protected-mode no\n' > /usr/local/bin/redis-server \\
    && chmod 755 /usr/local/bin/redis-server
WORKDIR /data
EXPOSE 6379
CMD ["redis-server"]
LABEL $LABEL=$RECIPE
CONTAINERFILE
  "${PODMAN[@]}" build --quiet --network=host --pull=never -t "$REDIS" "$context" >/dev/null
  rm -rf "$context"
  echo "$REDIS: built ($RECIPE)"
}

MIRROR=$(mirror)
# Each image's recipe is its function's text; the Redis stand-in's also covers the base it is built on.
RECIPE=$( { declare -f base_image; echo "$MIRROR"; } | sha256sum | cut -c1-16)
base_image
RECIPE=$( { declare -f redis_image; echo "$RECIPE"; } | sha256sum | cut -c1-16)
redis_image
