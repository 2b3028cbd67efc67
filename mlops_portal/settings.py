"""Settings, read from environment variables (see docs/configuration.md for every variable).

The defaults let a fresh checkout run with no services: SQLite in ./var and an embedded,
file-based Celery broker. Set DATABASE_URL and REDIS_URL to use PostgreSQL and Redis.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from mlops_portal.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_path,
    env_secret,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = env_path("PORTAL_VAR_DIR", BASE_DIR / "var")
VAR_DIR.mkdir(parents=True, exist_ok=True)  # SQLite, the embedded broker and artifacts live here by default

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) must be set when DEBUG is off")
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://localhost:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Apps in lifecycle order: each may import only the ones above it.
    "accounts",
    "jobs",
    "datasets",
    "experiments",
    "registry",
    "deployments",
    "monitoring",
    "pipelines",
    "dashboard",
    "mlops_portal.apps.PortalConfig",
]

MIDDLEWARE = [
    "monitoring.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # The mlflow client's calls (a token in the header) go straight to their views from here.
    "accounts.middleware.HeaderAuthFastLaneMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Token/Basic authentication runs before CSRF so header-authenticated API calls skip CSRF.
    "accounts.middleware.HeaderAuthenticationMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "accounts.middleware.AuthRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mlops_portal.urls"
WSGI_APPLICATION = "mlops_portal.wsgi.application"
ASGI_APPLICATION = "mlops_portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "mlops_portal.context_processors.navigation",
                "accounts.context_processors.roles",
            ],
        },
    },
]

# Database: SQLite by default, anything dj-database-url understands otherwise.
DATABASE_URL = env_url(
    "DATABASE_URL",  # or DATABASE_URL_FILE, like every secret
    f"sqlite:///{VAR_DIR / 'portal.sqlite3'}",
    {"sqlite", "postgres", "postgresql", "pgsql", "postgis"},
)
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0), conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Prepared statements for the hand-written hot paths (mlops_portal/rawsql.py), from their first
    # call and on their generic plan: planning them for each call's values cost a third of a call,
    # and a search page's detail query was planned in parallel (docs/performance.md, "Plans").
    # Django's own queries bind on the client and are never prepared. Turn off behind a pooler in
    # transaction mode.
    DB_PREPARED_STATEMENTS = env_bool("DB_PREPARED_STATEMENTS", True)
    DATABASES["default"]["OPTIONS"] = {"prepare_threshold": 0 if DB_PREPARED_STATEMENTS else None}
    # The portal's queries read a page at a time through indexes: starting parallel workers for them
    # cost more than it saved. -1 leaves the server's own setting.
    DB_PARALLEL_WORKERS = env_int("DB_PARALLEL_WORKERS", 0, minimum=-1)
    _startup = [f"-c max_parallel_workers_per_gather={DB_PARALLEL_WORKERS}"] if DB_PARALLEL_WORKERS >= 0 else []
    if DB_PREPARED_STATEMENTS:
        _startup.append("-c plan_cache_mode=force_generic_plan")  # only prepared statements have a plan cache
    if _startup:
        DATABASES["default"]["OPTIONS"]["options"] = " ".join(_startup)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    import sqlite3

    if sqlite3.sqlite_version_info < (3, 35):  # INSERT ... RETURNING, used when logging metrics
        raise ImproperlyConfigured(
            f"SQLite 3.35 or newer is needed, this Python has {sqlite3.sqlite_version}: "
            "use a newer Python build or set DATABASE_URL to PostgreSQL"
        )
    # WAL lets the worker and the web process write without "database is locked" errors.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Broker and cache: Redis when configured, else an embedded file broker under VAR_DIR.
REDIS_URL = env_url("REDIS_URL", "", {"redis", "rediss", "unix"})
CELERY_BROKER_URL = env_secret("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    _broker_dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        # kombu's default is ./control, relative to wherever the process was started.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=60),
    }
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True  # the database row is the source of truth, never the result backend
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

# The job reconciler (jobs/services.py::reconcile_jobs) runs on beat.
JOB_RECONCILE_INTERVAL = env_float("JOB_RECONCILE_INTERVAL", 15.0, minimum=1.0)
JOB_HEARTBEAT_INTERVAL = env_float("JOB_HEARTBEAT_INTERVAL", 5.0, minimum=0.1)
JOB_HEARTBEAT_TIMEOUT = env_float("JOB_HEARTBEAT_TIMEOUT", 60.0, minimum=1.0)
JOB_REDISPATCH_AFTER = env_float("JOB_REDISPATCH_AFTER", 120.0, minimum=1.0)
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3, minimum=1)
JOB_HEARTBEAT_THREAD = True  # tests that run jobs inside a test transaction turn it off

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"
# How long a web process trusts a checked API token before reading it again (accounts/services.py);
# revocations and role changes reach other web processes within this time.
TOKEN_CACHE_SECONDS = env_float("TOKEN_CACHE_SECONDS", 5.0, minimum=0.0)

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env_path("STATIC_ROOT", BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # Serves Plotly.js from the installed plotly package, so nothing comes from a CDN.
    "mlops_portal.staticfinders.PlotlyFinder",
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env_str("STATICFILES_STORAGE", "whitenoise.storage.CompressedManifestStaticFilesStorage")
    },
}

ARTIFACT_ROOT = env_path("ARTIFACT_ROOT", VAR_DIR / "artifacts")
# What a user who did not create an experiment and has no explicit grant may do with it.
TRACKING_DEFAULT_PERMISSION = env_str("TRACKING_DEFAULT_PERMISSION", "READ").upper()
if TRACKING_DEFAULT_PERMISSION not in {"NO_PERMISSIONS", "READ", "EDIT", "MANAGE"}:
    raise ImproperlyConfigured(
        "TRACKING_DEFAULT_PERMISSION must be one of NO_PERMISSIONS, READ, EDIT, MANAGE; "
        f"got {TRACKING_DEFAULT_PERMISSION!r}"
    )
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 10 * 1024**3, minimum=1)
# Datasets (datasets/inspect.py): what an upload may be, checked while it streams in.
DATASET_MAX_UPLOAD_BYTES = env_int("DATASET_MAX_UPLOAD_BYTES", MAX_UPLOAD_BYTES, minimum=1)
DATASET_MAX_COLUMNS = env_int("DATASET_MAX_COLUMNS", 10_000, minimum=1)
DATASET_MAX_FIELD_BYTES = env_int("DATASET_MAX_FIELD_BYTES", 1024**2, minimum=1024)
DATASET_MAX_ARCHIVE_MEMBERS = env_int("DATASET_MAX_ARCHIVE_MEMBERS", 10_000, minimum=1)
DATASET_MAX_UNPACKED_BYTES = env_int("DATASET_MAX_UNPACKED_BYTES", 4 * DATASET_MAX_UPLOAD_BYTES, minimum=1)
DATASET_MAX_COMPRESSION_RATIO = env_int("DATASET_MAX_COMPRESSION_RATIO", 100, minimum=1)
# Where dataset blobs live (datasets/storage.py): `local` (ARTIFACT_ROOT/datasets) or an S3-compatible bucket.
DATASET_STORAGE = env_str("DATASET_STORAGE", "local").strip().lower()
if DATASET_STORAGE not in {"local", "s3"}:
    raise ImproperlyConfigured(f"DATASET_STORAGE must be local or s3, got {DATASET_STORAGE!r}")
DATASET_S3_BUCKET = env_str("DATASET_S3_BUCKET", "").strip()
if DATASET_STORAGE == "s3" and not DATASET_S3_BUCKET:
    raise ImproperlyConfigured("DATASET_STORAGE=s3 needs DATASET_S3_BUCKET (the bucket must exist)")
DATASET_S3_PREFIX = env_str("DATASET_S3_PREFIX", "").strip().strip("/")
DATASET_S3_ENDPOINT_URL = env_url("DATASET_S3_ENDPOINT_URL", "", {"http", "https"})
DATASET_S3_REGION = env_str("DATASET_S3_REGION", "").strip()
DATASET_S3_ACCESS_KEY_ID = env_secret("DATASET_S3_ACCESS_KEY_ID").strip()
DATASET_S3_SECRET_ACCESS_KEY = env_secret("DATASET_S3_SECRET_ACCESS_KEY").strip()
DATASET_S3_ADDRESSING_STYLE = env_str("DATASET_S3_ADDRESSING_STYLE", "auto").strip().lower()
if DATASET_S3_ADDRESSING_STYLE not in {"auto", "path", "virtual"}:
    raise ImproperlyConfigured(
        f"DATASET_S3_ADDRESSING_STYLE must be auto, path or virtual, got {DATASET_S3_ADDRESSING_STYLE!r}"
    )
# S3 takes parts of 5 MiB to 5 GiB (the last may be smaller), at most 10,000 of them.
DATASET_S3_PART_BYTES = env_int("DATASET_S3_PART_BYTES", 8 * 1024**2, minimum=5 * 1024**2, maximum=5 * 1024**3)

# The model server (deployments/server/, `manage.py serve_models`).
MODEL_SERVER_PORT = env_int("MODEL_SERVER_PORT", 8001, minimum=1, maximum=65535)
# Where users reach the model server (shown on the deployment pages and in their examples).
MODEL_SERVER_URL = env_str("MODEL_SERVER_URL", f"http://127.0.0.1:{MODEL_SERVER_PORT}").rstrip("/")
# Largest prediction request body; bigger ones get 413.
MODEL_SERVER_MAX_BODY_BYTES = env_int("MODEL_SERVER_MAX_BODY_BYTES", 10 * 1024**2, minimum=1024)
# How often the server looks for changed active revisions.
MODEL_SERVER_POLL_SECONDS = env_float("MODEL_SERVER_POLL_SECONDS", 5.0, minimum=0.1)
# Model flavours the server may unpickle (e.g. `sklearn`); Keras/TensorFlow models never need it.
MODEL_SERVER_ALLOWED_PICKLE_FLAVORS = [f.lower() for f in env_list("MODEL_SERVER_ALLOWED_PICKLE_FLAVORS", [])]
# Serve only these deployments (comma-separated names); empty serves every active one. Kubernetes runs one
# model server Deployment per portal deployment this way (deployments/kubernetes.py).
MODEL_SERVER_DEPLOYMENTS = env_list("MODEL_SERVER_DEPLOYMENTS", [])

# Generated Kubernetes manifests (deployments/kubernetes.py): where they go and what they reference.
KUBERNETES_NAMESPACE = env_str("KUBERNETES_NAMESPACE", "default")
KUBERNETES_IMAGE = env_str("KUBERNETES_IMAGE", "mlops-portal:latest")
KUBERNETES_SECRET = env_str("KUBERNETES_SECRET", "mlops-portal")  # holds DATABASE_URL and SECRET_KEY
KUBERNETES_ARTIFACT_PVC = env_str("KUBERNETES_ARTIFACT_PVC", "mlops-portal-artifacts")
# Prediction logging: the share of requests whose body is kept (outputs and latency are always kept),
# and how often the server's background writer flushes its batch to the database.
MODEL_SERVER_LOG_PREDICTIONS = env_bool("MODEL_SERVER_LOG_PREDICTIONS", True)  # off: no monitoring, no canary judgment
MODEL_SERVER_LOG_INPUT_SAMPLE_RATE = min(env_float("MODEL_SERVER_LOG_INPUT_SAMPLE_RATE", 1.0, minimum=0.0), 1.0)
MODEL_SERVER_LOG_FLUSH_SECONDS = env_float("MODEL_SERVER_LOG_FLUSH_SECONDS", 0.1, minimum=0.01)
MODEL_SERVER_LOG_MAX_BODY_BYTES = env_int("MODEL_SERVER_LOG_MAX_BODY_BYTES", 64 * 1024, minimum=0)

# Monitoring (monitoring/): how often beat rolls the prediction log up, how many log rows one fill reads,
# and the most feedback items one POST /api/v1/feedback takes.
ROLLUP_INTERVAL_SECONDS = env_float("ROLLUP_INTERVAL_SECONDS", 30.0, minimum=1.0)
ROLLUP_BATCH_ROWS = env_int("ROLLUP_BATCH_ROWS", 50_000, minimum=100)
# Log rows younger than this wait for the next fill (writers commit out of id order).
ROLLUP_SETTLE_SECONDS = env_float("ROLLUP_SETTLE_SECONDS", 5.0, minimum=0.0)
FEEDBACK_MAX_ITEMS = env_int("FEEDBACK_MAX_ITEMS", 10_000, minimum=1)
# Retention (0: keep forever): prediction log rows and feedback; per-minute rollups and drift windows.
PREDICTION_LOG_RETENTION_DAYS = env_int("PREDICTION_LOG_RETENTION_DAYS", 30, minimum=0)
ROLLUP_RETENTION_DAYS = env_int("ROLLUP_RETENTION_DAYS", 400, minimum=0)
# Drift: how often beat computes it, for a window of how many minutes of live traffic (ending at a multiple
# of the interval).
DRIFT_INTERVAL_SECONDS = env_int("DRIFT_INTERVAL_SECONDS", 900, minimum=60)
DRIFT_WINDOW_MINUTES = env_int("DRIFT_WINDOW_MINUTES", 60, minimum=1, maximum=7 * 24 * 60)
# Alerts: how often beat evaluates the rules; host names webhooks may reach although they resolve to
# private or loopback addresses (the egress policy refuses those otherwise).
ALERT_EVAL_SECONDS = env_int("ALERT_EVAL_SECONDS", 60, minimum=5)
WEBHOOK_ALLOWED_HOSTS = env_list("WEBHOOK_ALLOWED_HOSTS", [])

# Training (experiments/training/): the trainers offered (dotted paths of Trainer classes; add your own),
# and how the data is read and split.
TRAINERS = env_list(
    "TRAINERS",
    [
        "experiments.training.keras_models.MLPClassifier",
        "experiments.training.keras_models.MLPRegressor",
        "experiments.training.keras_models.LinearClassifier",
        "experiments.training.keras_models.LinearRegressor",
    ],
)
TRAINING_MAX_ROWS = env_int("TRAINING_MAX_ROWS", 1_000_000, minimum=10)
TRAINING_TEST_FRACTION = min(env_float("TRAINING_TEST_FRACTION", 0.2, minimum=0.01), 0.5)
TRAINING_VALIDATION_FRACTION = min(env_float("TRAINING_VALIDATION_FRACTION", 0.1, minimum=0.01), 0.5)
TRAINING_MAX_CATEGORIES = env_int("TRAINING_MAX_CATEGORIES", 50, minimum=1)
TRAINING_MAX_CLASSES = env_int("TRAINING_MAX_CLASSES", 100, minimum=2)
# Your own training scripts as jobs (experiments/training/scripts.py): directories whose .py files editors may
# run (besides uploads), the upload cap, the default time and memory limits, and the tracking URI the scripts'
# `mlflow` calls use (the portal as the workers reach it; SITE_URL unless the workers need another address).
TRAINING_SCRIPT_DIRS = [Path(p).resolve() for p in env_list("TRAINING_SCRIPT_DIRS", [str(BASE_DIR / "examples")])]
SCRIPT_MAX_BYTES = env_int("SCRIPT_MAX_BYTES", 1024 * 1024, minimum=1)
SCRIPT_TIMEOUT_SECONDS = env_int("SCRIPT_TIMEOUT_SECONDS", 6 * 3600, minimum=1)
SCRIPT_MEMORY_MB = env_int("SCRIPT_MEMORY_MB", 4096, minimum=64)
SCRIPT_TRACKING_URI = env_str("SCRIPT_TRACKING_URI", SITE_URL).rstrip("/")
# Pipelines (pipelines/): how often beat starts due schedules and moves runs on; the Python functions a
# pipeline's `function` steps may call (dotted paths).
PIPELINE_TICK_SECONDS = env_float("PIPELINE_TICK_SECONDS", 15.0, minimum=1.0)
PIPELINE_FUNCTIONS = env_list(
    "PIPELINE_FUNCTIONS",
    ["pipelines.functions.echo", "pipelines.functions.wait", "examples.founding_airflow.preprocess",
     "examples.founding_airflow.train", "examples.founding_airflow.deploy"],
)  # fmt: skip
# Sweeps (experiments/training/sweeps.py): the most trials one sweep may have, and the most it may run at once.
SWEEP_MAX_TRIALS = env_int("SWEEP_MAX_TRIALS", 100, minimum=1)
SWEEP_MAX_CONCURRENCY = env_int("SWEEP_MAX_CONCURRENCY", 8, minimum=1)

# Rollouts (deployments/rollouts.py): how often the job looks at the canary and at user commands, whether
# it waits for the model server to report the candidate loaded, and for how long.
ROLLOUT_TICK_SECONDS = env_float("ROLLOUT_TICK_SECONDS", 2.0, minimum=0.01)
ROLLOUT_WAIT_FOR_MODEL_SERVER = env_bool("ROLLOUT_WAIT_FOR_MODEL_SERVER", True)
ROLLOUT_LOAD_TIMEOUT_SECONDS = env_float("ROLLOUT_LOAD_TIMEOUT_SECONDS", 300.0, minimum=1.0)
# Rows of the holdout dataset version the accuracy gate scores (the first ones), and single-row calls timed.
ROLLOUT_HOLDOUT_MAX_ROWS = env_int("ROLLOUT_HOLDOUT_MAX_ROWS", 50_000, minimum=1)
ROLLOUT_LATENCY_SAMPLES = env_int("ROLLOUT_LATENCY_SAMPLES", 200, minimum=10)

# Security: HTTPS is assumed unless DEBUG is on or HTTPS=false (the laptop launcher sets that).
HTTPS = env_bool("HTTPS", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", HTTPS)
# Probes and scrapers talk plain HTTP inside the cluster.
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^ready$", r"^metrics$"]
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", HTTPS)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if env_bool("USE_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerTokenAuthentication",
        "accounts.authentication.CachedBasicAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.RolePermission"],
    "DEFAULT_PAGINATION_CLASS": "mlops_portal.api.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "mlops_portal.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MLOps Portal API",
    "DESCRIPTION": "REST API of the MLOps Portal. Authenticate with `Authorization: Bearer <token>` or HTTP Basic.",
    "VERSION": "1.7.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["accounts.permissions.RolePermission"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "SweepStrategyEnum": "experiments.models.SweepStrategy",
        "StrategyEnum": "deployments.models.Strategy",  # the rollout strategy, as before sweeps had one
    },
}

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "mlops-portal@localhost")

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOG_FORMAT = env_str("LOG_FORMAT", "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "mlops_portal.logging.JsonFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
        }
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "django.db.backends": {"level": "WARNING"},
    },
}
