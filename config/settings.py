"""Settings, all from environment variables (django-environ) with working defaults."""

from pathlib import Path

import environ
from corsheaders.defaults import default_headers as default_cors_headers

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # optional; real environment variables win

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default="dev-insecure-change-me-" + "x" * 40)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS: set HTTPS=true behind a TLS-terminating proxy that sends X-Forwarded-Proto. Then http is
# redirected (but /healthz and /metrics, which load balancers and Prometheus call over the private
# network), cookies are secure-only and HSTS is sent. Django adds nosniff, X-Frame-Options DENY and a
# same-origin referrer policy to every response regardless.
HTTPS = env.bool("HTTPS", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SECURE_SSL_REDIRECT = HTTPS
SECURE_REDIRECT_EXEMPT = [r"^healthz/?$", r"^metrics/?$"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_rq",
    "allauth",
    "allauth.account",
    "accounts",
    "generation",
    "billing",
]

MIDDLEWARE = [
    "config.middleware.AbsoluteFormMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "home"

# Sign-up, log-in, password reset: django-allauth, by email.
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = env("ACCOUNT_EMAIL_VERIFICATION", default="optional")  # none, optional, mandatory
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = True
ACCOUNT_RATE_LIMITS = {
    "login_failed": env("LOGIN_RATE_LIMIT", default="10/m/ip,5/5m/key"),
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
}
# Emails: the console in development, SMTP from EMAIL_URL (e.g. smtp+tls://user:pass@host:587) in production.
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="SDXL API <noreply@localhost>")

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
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)  # a connection broken by a restart is replaced
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
    # The web tier (config/asgi.py sets DB_POOL) runs each request in a thread of its own: persistent
    # per-thread connections would pile up, so it borrows from a pool of DB_POOL_MAX per process instead.
    if env.bool("DB_POOL", default=False):
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        # A request waits at most DB_POOL_TIMEOUT seconds for a connection (the database is away: it is
        # answered "Service temporarily unavailable"); each lent connection is checked (CONN_HEALTH_CHECKS),
        # so none broken by a restart answers a request with an error.
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": 1,
            "max_size": env.int("DB_POOL_MAX", default=16),
            "timeout": env.float("DB_POOL_TIMEOUT", default=5.0),
        }
# Requests inside Django at once per web process (config/asgi.py); the others wait as coroutines. As many
# as the pool has connections, so that none waits for one.
WEB_MAX_CONCURRENT_REQUESTS = env.int("WEB_MAX_CONCURRENT_REQUESTS", default=env.int("DB_POOL_MAX", default=16))
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = env("MEDIA_URL", default="/media/")
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(VAR_DIR / "media")))
# Serve MEDIA_ROOT from Django itself (local storage without a front proxy).
SERVE_MEDIA = env.bool("SERVE_MEDIA", default=True)

# Outputs go through Django's storage API: local files by default, S3 (django-storages) when a
# bucket is configured.
AWS_STORAGE_BUCKET_NAME = env("AWS_STORAGE_BUCKET_NAME", default="")
if AWS_STORAGE_BUCKET_NAME:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env("AWS_S3_ENDPOINT_URL", default=None),
            "region_name": env("AWS_S3_REGION_NAME", default=None),
            "custom_domain": env("AWS_S3_CUSTOM_DOMAIN", default=None),
            "querystring_auth": False,
            "file_overwrite": False,
            "default_acl": env("AWS_DEFAULT_ACL", default=None),  # or a bucket policy: see the README
        },
    }
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Redis and RQ. Three queues by priority; workers listen to them in this order.
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
# Fail fast (and answer a clear error) rather than hang when Redis is away; RQ's worker raises the
# read timeout of its own connection above its blocking dequeue.
_REDIS_TIMEOUTS = "socket_connect_timeout=2&socket_timeout=10"
REDIS_CLIENT_URL = (
    REDIS_URL if "socket_timeout" in REDIS_URL else (REDIS_URL + ("&" if "?" in REDIS_URL else "?") + _REDIS_TIMEOUTS)
)
GENERATION_QUEUES = ["high", "default", "low"]
TRAINING_QUEUE = "training"  # trainings' own queue: served by the workers started with it (make run starts one)
RQ_QUEUES = {name: {"URL": REDIS_CLIENT_URL, "DEFAULT_TIMEOUT": 900} for name in [*GENERATION_QUEUES, TRAINING_QUEUE]}
RQ = {"WORKER_CLASS": "generation.runtime.worker.GenerationWorker"}

# The cache (log-in rate limits, sessions' helpers) is shared by every web process through Redis.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env("CACHE_URL", default=REDIS_URL),
        "KEY_PREFIX": "sdxl-cache",
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 5},
    }
}

# Generation.
SDXL_MODEL = env("SDXL_MODEL", default=str(VAR_DIR / "models" / "tiny-sdxl"))
SDXL_VAE = env("SDXL_VAE", default="")  # optional separate VAE folder or id (e.g. an fp16-safe VAE)
SDXL_DEVICE = env("SDXL_DEVICE", default="auto")  # auto, cpu, cuda, cuda:1, mps
DEMO_MODEL_PATH = VAR_DIR / "models" / "tiny-sdxl"
# The GPU fast path (generation/runtime/acceleration.py); "auto" is on for CUDA, off on CPU.
SDXL_DTYPE = env("SDXL_DTYPE", default="auto")  # auto (bf16 on CUDA, else fp16; fp32 on CPU), fp16, bf16, fp32
SDXL_CHANNELS_LAST = env("SDXL_CHANNELS_LAST", default="auto")
SDXL_FUSE_QKV = env("SDXL_FUSE_QKV", default="auto")
SDXL_COMPILE = env("SDXL_COMPILE", default="")  # "", default, reduce-overhead, max-autotune
SDXL_VAE_TILING = env("SDXL_VAE_TILING", default="on")  # decodes only large images in tiles
SDXL_WARMUP_SIZES = env.list("SDXL_WARMUP_SIZES", default=[])  # e.g. 1024x1024,768x768: compiled at start
GENERATION_WAIT_SECONDS = env.float("GENERATION_WAIT_SECONDS", default=5.0)
GENERATION_JOB_TIMEOUT = env.int("GENERATION_JOB_TIMEOUT", default=900)
GENERATION_TIP = "for faster speed, keep resolution upto 512x512"
# Workers: heartbeat (a dead worker's jobs are recovered ~3 intervals after it stops), maintenance
# (job sweep, credit renewal) and how many times a job may be started before it fails for good.
WORKER_HEARTBEAT_INTERVAL = env.float("WORKER_HEARTBEAT_INTERVAL", default=5.0)
WORKER_MAINTENANCE_INTERVAL = env.float("WORKER_MAINTENANCE_INTERVAL", default=30.0)
# Compatible text2img jobs waiting on the same queue run in one pipeline call, up to this many jobs
# (1: every job alone). Worth it on a GPU; on a CPU it saves little (bench/batching.py).
WORKER_MAX_BATCH = env.int("WORKER_MAX_BATCH", default=1)
# a worker that serves only background queues (training) runs at this lower CPU priority (nice), so that
# generations on the same machine are not slowed by a training (bench/training.py); 0: the same priority
BACKGROUND_WORKER_NICE = env.int("BACKGROUND_WORKER_NICE", default=10)
JOB_MAX_RUNS = env.int("JOB_MAX_RUNS", default=2)
# How long a worker keeps trying to record a finished job while the database is away (a restart): the
# job stays its own meanwhile; past it, the sweep re-queues or fails it.
WORKER_DATABASE_RETRY_SECONDS = env.float("WORKER_DATABASE_RETRY_SECONDS", default=120.0)
# Retention: outputs (and inputs) of jobs finished longer ago are deleted by `manage.py expire_outputs`
# (0 keeps them forever).
OUTPUT_RETENTION_DAYS = env.int("OUTPUT_RETENTION_DAYS", default=30)
# Operations: Prometheus /metrics needs `Authorization: Bearer <METRICS_TOKEN>` (unset: /metrics is off).
METRICS_TOKEN = env("METRICS_TOKEN", default="")

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["generation.web.parsers.AnyJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "generation.api.errors.exception_handler",
    "DEFAULT_METADATA_CLASS": None,  # OPTIONS is CORS preflight (corsheaders) or "use POST", never a schema dump
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SDXL API",
    "DESCRIPTION": "Self-hosted Stable Diffusion XL API, wire-compatible with the hosted Stable Diffusion API v3. "
    'Every endpoint is POST with a JSON body carrying `key`; errors are HTTP 200 with status "error".',
    "VERSION": "3",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["generation.urls.v3_paths_only"],
}

# Browser apps may call the API from any origin (the key travels in the body, no cookies).
CORS_URLS_REGEX = r"^/api/v\d+/.*$"
CORS_ALLOW_ALL_ORIGINS = True
CORS_ALLOW_HEADERS = (*default_cors_headers, "key", "x-api-key", "idempotency-key")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.server": {"level": "WARNING"}},
}

# Absolute URLs in responses use the request's host; set this when behind a proxy that rewrites it.
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default="").rstrip("/")

# Outbound HTTP (input image URLs, webhooks): see generation/infra/safe_http.py.
# Private networks that may be fetched anyway, e.g. "10.0.0.0/8" for images on your own network.
SAFE_HTTP_ALLOWED_NETWORKS = env.list("SAFE_HTTP_ALLOWED_NETWORKS", default=[])
SAFE_HTTP_CONNECT_TIMEOUT = env.float("SAFE_HTTP_CONNECT_TIMEOUT", default=5.0)
SAFE_HTTP_READ_TIMEOUT = env.float("SAFE_HTTP_READ_TIMEOUT", default=10.0)
SAFE_HTTP_TOTAL_TIMEOUT = env.float("SAFE_HTTP_TOTAL_TIMEOUT", default=20.0)
SAFE_HTTP_MAX_REDIRECTS = env.int("SAFE_HTTP_MAX_REDIRECTS", default=3)
FETCHES_PER_ACCOUNT = env.int("FETCHES_PER_ACCOUNT", default=4)  # image URLs one account fetches at once
# Input images, checked from their headers by the web tier (the worker decodes them): bytes, pixels, the
# longest side and the long side over the short one of each, and the pixels of all a request sends.
INPUT_IMAGE_MAX_BYTES = env.int("INPUT_IMAGE_MAX_BYTES", default=20 * 1024 * 1024)
INPUT_IMAGE_MAX_PIXELS = env.int("INPUT_IMAGE_MAX_PIXELS", default=4096 * 4096)
INPUT_IMAGE_MAX_SIDE = env.int("INPUT_IMAGE_MAX_SIDE", default=8192)
INPUT_IMAGE_MAX_ASPECT = env.float("INPUT_IMAGE_MAX_ASPECT", default=16.0)
INPUT_REQUEST_MAX_PIXELS = env.int("INPUT_REQUEST_MAX_PIXELS", default=4 * 4096 * 4096)
# A JSON body may carry two base64 images (inpaint): room for both at the size cap, refused beyond.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("API_MAX_BODY_BYTES", default=2 * INPUT_IMAGE_MAX_BYTES * 4 // 3 + 1024 * 1024)
# Upscalers (super_resolution): `<model id>.pth` files here; in demo mode a missing one is a plain resize.
UPSCALER_DIR = env("UPSCALER_DIR", default=str(VAR_DIR / "models" / "upscalers"))
# Demo mode (make run sets it): a plain Lanczos resize stands in for a missing official .pth file, and
# answers say so. Off: a missing file is an error before anything is charged.
UPSCALER_DEMO = env.bool("UPSCALER_DEMO", default=False)
# The model library (generation/inputs/library.py): where workers keep copies of model files held in storage;
# which checkpoints a worker holds (ids; empty: the default checkpoint); its LoRA cache's bounds; how long
# a checkpoint no live worker serves keeps accepting jobs.
MODEL_CACHE_DIR = env("MODEL_CACHE_DIR", default=str(VAR_DIR / "models" / "cache"))
WORKER_CHECKPOINTS = env.list("WORKER_CHECKPOINTS", default=[])
LORA_CACHE_COUNT = env.int("LORA_CACHE_COUNT", default=8)
LORA_CACHE_BYTES = env.int("LORA_CACHE_BYTES", default=2 * 1024**3)
# ControlNets a worker keeps loaded (least recently used out); an SDXL ControlNet is 2.5 GB in fp16
CONTROLNET_CACHE_COUNT = env.int("CONTROLNET_CACHE_COUNT", default=4)
CONTROLNET_CACHE_BYTES = env.int("CONTROLNET_CACHE_BYTES", default=12 * 1024**3)
# `auto_hint` for canny ControlNets: OpenCV's Canny hysteresis thresholds (0-255), as A1111's and the
# diffusers examples' canny preprocessors use them
CANNY_LOW_THRESHOLD = env.int("CANNY_LOW_THRESHOLD", default=100)
CANNY_HIGH_THRESHOLD = env.int("CANNY_HIGH_THRESHOLD", default=200)
CHECKPOINT_STALE_SECONDS = env.int("CHECKPOINT_STALE_SECONDS", default=300)
UPSCALER_TILE = env.int("UPSCALER_TILE", default=256)
UPSCALER_TILE_PAD = env.int("UPSCALER_TILE_PAD", default=16)
UPSCALE_MAX_INPUT_PIXELS = env.int("UPSCALE_MAX_INPUT_PIXELS", default=2048 * 2048)
# Webhooks: seconds to wait before each retry (3 retries -> 4 tries in all).
WEBHOOK_RETRY_DELAYS = [float(x) for x in env.list("WEBHOOK_RETRY_DELAYS", default=["2", "10", "30"])]
# Optional NSFW filter: a diffusers StableDiffusionSafetyChecker folder. Off when empty.
SAFETY_CHECKER_MODEL = env("SAFETY_CHECKER_MODEL", default="")
# `enhance_prompt`: these words are added to the prompt (and show in meta.prompt)
PROMPT_ENHANCEMENT = env(
    "PROMPT_ENHANCEMENT", default="highly detailed, sharp focus, intricate details, professional, 8k"
)
# `self_attention`: the strength of perturbed-attention guidance
PAG_SCALE = env.float("PAG_SCALE", default=3.0)
# The front-ends (OpenAI Images API, AUTOMATIC1111 API): how long a request waits for its images (their
# clients cannot poll; the wait holds no thread), the size `"auto"` means, the denoising steps of OpenAI's
# `quality` values, and OpenAI's own model names, which mean the default checkpoint.
FRONTEND_WAIT_SECONDS = env.float("FRONTEND_WAIT_SECONDS", default=600.0)
FRONTEND_DEFAULT_SIZE = env.int("FRONTEND_DEFAULT_SIZE", default=1024)
OPENAI_QUALITY_STEPS = {
    name: int(steps)
    for name, steps in env.dict(
        "OPENAI_QUALITY_STEPS", default={"low": 15, "standard": 25, "medium": 25, "auto": 25, "high": 40, "hd": 40}
    ).items()
}
OPENAI_MODEL_ALIASES = env.list(
    "OPENAI_MODEL_ALIASES", default=["dall-e-2", "dall-e-3", "gpt-image-1", "gpt-image-1-mini"]
)
# image_editing/object_removal: SDXL inpainting of the mask with these words, at this strength
OBJECT_REMOVAL_PROMPT = env(
    "OBJECT_REMOVAL_PROMPT", default="empty background, seamless continuation of the surroundings, nothing there"
)
OBJECT_REMOVAL_NEGATIVE_PROMPT = env(
    "OBJECT_REMOVAL_NEGATIVE_PROMPT", default="object, person, animal, text, watermark, new item, clutter, artifacts"
)
OBJECT_REMOVAL_STRENGTH = env.float("OBJECT_REMOVAL_STRENGTH", default=0.99)
OBJECT_REMOVAL_STEPS = env.int("OBJECT_REMOVAL_STEPS", default=30)
# image_editing/img_mixer: the library IP-Adapter that mixes the images (empty: the first one a plan may use)
IMG_MIXER_IP_ADAPTER = env("IMG_MIXER_IP_ADAPTER", default="")
# the realtime endpoints' fast model: a library checkpoint (SDXL-Lightning, Turbo) or a LoRA (LCM, Hyper-SD)
# on the checkpoint a request runs; its own sampling applies. Empty: they run like images/text2img.
REALTIME_MODEL = env("REALTIME_MODEL", default="")
# image_editing/removebg_mask: the library segmentation model (empty: the first one a plan may use)
REMOVEBG_MODEL = env("REMOVEBG_MODEL", default="")
# The largest side a segmentation model may declare for its input (U2-Net's is 320, IS-Net's 1024): the
# worker's memory for one mask grows with its square.
SEGMENTATION_MAX_INPUT_SIDE = env.int("SEGMENTATION_MAX_INPUT_SIDE", default=2048)
# Training (generation/kinds/training.py, generation/runtime/trainer.py): a LoRA of the UNet's attention
# (lora_fine_tune), with both text encoders for DreamBooth (fine_tune). Priced per 100 steps at
# 1024x1024, scaled by the training size's area; plans limit steps, photos and trainings at once.
CREDITS_PER_100_TRAINING_STEPS = env.int("CREDITS_PER_100_TRAINING_STEPS", default=10)
CREDITS_PER_CROP = env.int("CREDITS_PER_CROP", default=0)  # base64_crop: a training's photo made square
TRAINING_JOB_TIMEOUT = env.int("TRAINING_JOB_TIMEOUT", default=6 * 3600)
TRAINING_RESOLUTION = env.int("TRAINING_RESOLUTION", default=1024)  # at most; a smaller model trains at its own
TRAINING_DEFAULT_STEPS = env.int("TRAINING_DEFAULT_STEPS", default=500)
TRAINING_MIN_IMAGES = env.int("TRAINING_MIN_IMAGES", default=3)
TRAINING_RANK = env.int("TRAINING_RANK", default=16)
TRAINING_LEARNING_RATE = env.float("TRAINING_LEARNING_RATE", default=1e-4)
TRAINING_TEXT_ENCODER_LEARNING_RATE = env.float("TRAINING_TEXT_ENCODER_LEARNING_RATE", default=5e-6)
TRAINING_CLASS_IMAGES = env.int(
    "TRAINING_CLASS_IMAGES", default=10
)  # prior preservation's, when a class_prompt is given
TRAINING_CLASS_STEPS = env.int("TRAINING_CLASS_STEPS", default=20)  # denoising steps of each class image
TRAINING_PRIOR_LOSS_WEIGHT = env.float("TRAINING_PRIOR_LOSS_WEIGHT", default=1.0)
TRAINING_MIN_SNR_GAMMA = env.float("TRAINING_MIN_SNR_GAMMA", default=0.0)  # 5.0: min-SNR weighting; 0: plain MSE
TRAINING_SAMPLE_EVERY = env.int("TRAINING_SAMPLE_EVERY", default=100)  # steps between sample images
TRAINING_SAMPLE_STEPS = env.int("TRAINING_SAMPLE_STEPS", default=20)
TRAINING_CHECKPOINT_EVERY = env.int("TRAINING_CHECKPOINT_EVERY", default=50)  # steps between resumable states
TRAINING_SANDBOX_STEPS = env.int("TRAINING_SANDBOX_STEPS", default=10)
TRAINING_ZIP_MAX_BYTES = env.int("TRAINING_ZIP_MAX_BYTES", default=200 * 1024 * 1024)
TRAINING_ZIP_MAX_ENTRIES = env.int("TRAINING_ZIP_MAX_ENTRIES", default=200)
# image_editing/base64_to_url: what an account may keep uploaded, and for how long
UPLOAD_QUOTA_BYTES = env.int("UPLOAD_QUOTA_BYTES", default=200 * 1024 * 1024)
UPLOAD_RETENTION_DAYS = env.int("UPLOAD_RETENTION_DAYS", default=7)
# Per-key and per-account limits (the billing plan overrides them).
API_REQUESTS_PER_MINUTE = env.int("API_REQUESTS_PER_MINUTE", default=60)
# fetch, cancel, system_load, account, model_list: per account, the larger of this and the plan's limit
API_POLL_REQUESTS_PER_MINUTE = env.int("API_POLL_REQUESTS_PER_MINUTE", default=600)
# API keys a user may create per hour in the dashboard, and keep active at once.
KEY_CREATIONS_PER_HOUR = env.int("KEY_CREATIONS_PER_HOUR", default=10)
MAX_ACTIVE_KEYS = env.int("MAX_ACTIVE_KEYS", default=25)
MAX_QUEUED_JOBS = env.int("MAX_QUEUED_JOBS", default=10)

# Billing. Credits per image by kind; the free plan's monthly credits when it is first created.
CREDITS_PER_IMAGE = env.int("CREDITS_PER_IMAGE", default=1)  # each kind names its setting (generation/kinds/)
CREDITS_PER_UPSCALE = env.int("CREDITS_PER_UPSCALE", default=1)
CREDITS_PER_CONTROLNET_IMAGE = env.int("CREDITS_PER_CONTROLNET_IMAGE", default=1)
FREE_PLAN_CREDITS = env.int("FREE_PLAN_CREDITS", default=100)
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env("STRIPE_API_BASE", default="")  # tests point the library at a local server
