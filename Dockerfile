# The portal's one image: web (granian, the default), worker, beat and the one-shot bootstrap all run it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 portal \
    && useradd --system --uid 10001 --gid portal --home-dir /app --no-create-home --shell /usr/sbin/nologin portal

WORKDIR /app

# Requirements first, so a code change does not reinstall them.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .

# The static files (Plotly.js included) are baked into the image; whitenoise serves them. The settings
# refuse to load without a SECRET_KEY, so a throwaway one is given to this one command only.
RUN SECRET_KEY=collectstatic-only-not-a-real-key PORTAL_VAR_DIR=/tmp/build-var \
        python manage.py collectstatic --noinput --verbosity 0 \
    && rm -rf /tmp/build-var

# Directories the non-root user writes to. Named volumes mounted here start with this ownership.
#   /var/lib/portal          PORTAL_VAR_DIR: artifacts (share it between web and worker)
#   /var/lib/celerybeat      the beat schedule file
#   /var/lib/portal-metrics  the Prometheus scrape token written by deploy/bootstrap.sh
RUN mkdir -p /var/lib/portal /var/lib/celerybeat /var/lib/portal-metrics \
    && chown portal:portal /var/lib/portal /var/lib/celerybeat /var/lib/portal-metrics \
    && chmod 0755 /app/deploy/entrypoint.sh /app/deploy/bootstrap.sh

ENV PORTAL_VAR_DIR=/var/lib/portal \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus-multiproc

USER portal
EXPOSE 8000

ENTRYPOINT ["/app/deploy/entrypoint.sh"]
# granian's worker processes: GRANIAN_WORKERS (1 unless set; docker-compose sets it from WEB_CONCURRENCY).
CMD ["granian", "--interface", "wsgi", "--host", "0.0.0.0", "--port", "8000", "--blocking-threads", "4", "--no-ws", "--access-log", "--respawn-failed-workers", "--workers-kill-timeout", "10", "mlops_portal.wsgi:application"]
