"""Test settings: the production settings with safe defaults for a test run.

DATABASE_URL and REDIS_URL still choose the services (CI points them at PostgreSQL and Redis).
"""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-that-is-long-enough-for-django-checks-1234567890")
os.environ.setdefault("HTTPS", "false")
os.environ.setdefault("STATICFILES_STORAGE", "django.contrib.staticfiles.storage.StaticFilesStorage")
os.environ.setdefault("LOG_FORMAT", "plain")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# Live-server threads outlive requests (clients keep connections alive); persistent database
# connections would then block dropping the test database.
os.environ.setdefault("DB_CONN_MAX_AGE", "0")

from mlops_portal.settings import *  # noqa: F403  (settings modules are the one place for this)

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; tests only
ROLLUP_SETTLE_SECONDS = float(os.environ.get("ROLLUP_SETTLE_SECONDS", "0"))  # tests log "now" and roll up at once

# Serve static files straight from the finders; nothing is collected in a test run.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
STATIC_ROOT = VAR_DIR / "test-static"  # noqa: F405
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
