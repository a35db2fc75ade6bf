# cacherr as a container. On Unraid, use the Community Applications template
# (unraid-plugin/cacherr.xml); elsewhere see docker-compose.yml.
#
# The base is Debian's own slim image with Debian's Python (3.11): a base that can be
# rebuilt from Debian's archive with debootstrap alone, so the image that the test suite
# builds (tests/container) is the image that ships.
FROM debian:bookworm-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/cacherr/venv \
    PATH=/opt/cacherr/venv/bin:$PATH

# bookworm: setpriv (util-linux, essential) is in the base image; see docker/entrypoint.sh.
# Debian's python3 at the release's version: Debian's security updates keep it current.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv "$VIRTUAL_ENV"

WORKDIR /opt/cacherr

# Dependencies first, so that code changes reuse this layer; pinned to the same closure
# as the Unraid plugin's package (unraid-plugin/constraints.txt).
COPY requirements.txt unraid-plugin/constraints.txt ./
RUN pip install --no-cache-dir -r requirements.txt -c constraints.txt

COPY pyproject.toml README.md ./
COPY cacherr ./cacherr
RUN pip install --no-cache-dir --no-deps . \
    && python -m compileall -q "$(python -c 'import cacherr, os; print(os.path.dirname(cacherr.__file__))')"

COPY docker/entrypoint.sh /usr/local/bin/cacherr-entrypoint
# `cacherr` is the same script (see it): a command run with `docker exec`, as root, runs as
# PUID:PGID with UMASK like the service. The venv's own console script goes, so that this
# is the only `cacherr` on PATH.
RUN ln -s cacherr-entrypoint /usr/local/bin/cacherr && rm "$VIRTUAL_ENV/bin/cacherr"

# PUID/PGID: who cacherr runs as (Unraid: nobody:users); UMASK for what it creates.
# CACHERR_IN_CONTAINER tells cacherr that paths outside /mnt are the container's own
# (the mover list's default place, doctor's advice, init's Plex address).
ENV CACHERR_CONFIG=/config/rules.yaml \
    CACHERR_IN_CONTAINER=1 \
    PUID=99 \
    PGID=100 \
    UMASK=022

VOLUME ["/config"]
EXPOSE 5445
# cacherr stops within 5 s of SIGTERM; give it 30 s (docker stop -t 30 / stop_grace_period).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["cacherr", "healthcheck"]

ENTRYPOINT ["/usr/local/bin/cacherr-entrypoint"]
# --wait-for-rules: with no valid rules file yet, stay up (healthy, idle) until there is one.
CMD ["run", "--wait-for-rules"]
