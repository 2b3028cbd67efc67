#!/bin/sh
# One-shot preparation before web, worker and beat start (the compose `migrate` service runs it):
#
#   1. apply the database migrations;
#   2. create the first admin (PORTAL_ADMIN_USER, default admin; PORTAL_ADMIN_PASSWORD, else a generated
#      password is printed once, read it with `docker compose logs migrate`);
#   3. when METRICS_TOKEN_FILE is set: write a new random token secret there unless the file already has
#      one, and register it as an API token of METRICS_TOKEN_USER (default prometheus, a viewer), so that
#      Prometheus, which mounts the same file, can scrape /metrics. Delete the file to rotate the token.
#
# Every step is idempotent, so running it on each `docker compose up` is safe.
set -eu
cd "$(dirname "$0")/.."  # the project directory (/app in the image)

python manage.py migrate --noinput
python manage.py ensure_admin

if [ -n "${METRICS_TOKEN_FILE:-}" ]; then
    if [ ! -s "$METRICS_TOKEN_FILE" ]; then
        mkdir -p "$(dirname "$METRICS_TOKEN_FILE")"
        # Readable by Prometheus, which runs as another user (nobody); only it and this service mount the volume.
        umask 022
        python -c 'import secrets; print("mlp_" + secrets.token_urlsafe(32))' > "$METRICS_TOKEN_FILE.tmp"
        mv "$METRICS_TOKEN_FILE.tmp" "$METRICS_TOKEN_FILE"
        echo "Generated a new metrics token in $METRICS_TOKEN_FILE"
    fi
    python manage.py ensure_service_token "${METRICS_TOKEN_USER:-prometheus}" \
        --secret-file "$METRICS_TOKEN_FILE" --name "prometheus scrape token"
fi
