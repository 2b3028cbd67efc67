#!/bin/sh
# Entry point of the portal image: prepare the container, then run the command (granian by default).
#
#   PROMETHEUS_MULTIPROC_DIR  cleared at every start: files left by the previous run of this container
#                             would otherwise be summed into /metrics with the new processes' values.
#   PORTAL_BOOTSTRAP=true     run deploy/bootstrap.sh first (migrations, admin user, metrics token), for a
#                             single container without the compose `migrate` service. Only for the web
#                             role: several containers migrating at once would race.
set -eu

if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    find "$PROMETHEUS_MULTIPROC_DIR" -mindepth 1 -maxdepth 1 -type f -name '*.db' -delete
fi

case "${PORTAL_BOOTSTRAP:-false}" in
    true | 1 | yes) "$(dirname "$0")/bootstrap.sh" ;;
esac

exec "$@"
