# cacherr as a container. On Unraid, use the Community Applications template
# (unraid-plugin/cacherr.xml); elsewhere see docker-compose.yml.
FROM python:3.12-slim-bookworm

# bookworm: setpriv (util-linux, essential) is in the base image; see docker/entrypoint.sh.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/cacherr

# Dependencies first (pinned), so that code changes reuse this layer.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY pyproject.toml README.md ./
COPY cacherr ./cacherr
RUN pip install --no-cache-dir --no-deps . \
    && python -m compileall -q "$(python -c 'import cacherr, os; print(os.path.dirname(cacherr.__file__))')"

COPY docker/entrypoint.sh /usr/local/bin/cacherr-entrypoint

# PUID/PGID: who cacherr runs as (Unraid: nobody:users); UMASK for what it creates.
ENV CACHERR_CONFIG=/config/rules.yaml \
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
CMD ["run"]
