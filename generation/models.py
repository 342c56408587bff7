import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from generation import kinds
from generation.kinds.base import JobParams, ModelType
from generation.kinds.sampling import Sampling


class Job(models.Model):
    """One API request for images: the source of truth for its state, parameters and outputs."""

    Kind = models.TextChoices("Kind", [(name.upper(), name) for name in kinds.KINDS])

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCESS = "success"
        FAILED = "failed"
        CANCELED = "canceled"

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs")
    api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    params = models.JSONField(help_text="the job's parameters (generation/kinds/, by kind)")
    seed = models.BigIntegerField()
    seeds = models.JSONField(default=list, blank=True, help_text="each image's seed, once it ran")
    nsfw = models.JSONField(null=True, blank=True, help_text="per image, when the safety checker ran")
    file_prefix = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    output_format = models.CharField(max_length=8, default="png")
    output_names = models.JSONField(default=list, blank=True, help_text="storage names of the outputs")
    thumbnail_name = models.CharField(max_length=200, blank=True, help_text="a small JPEG of the first output")
    base_url = models.CharField(max_length=200, help_text="scheme and host the request came to")
    queue_name = models.CharField(max_length=32, default="default")
    attempt = models.PositiveSmallIntegerField(default=1, help_text="times queued; names the RQ job of each try")
    runs = models.PositiveSmallIntegerField(default=0, help_text="times a worker started it")
    worker_name = models.CharField(max_length=200, blank=True, help_text="the RQ worker running it (or that ran it)")
    predicted_seconds = models.FloatField(default=0.0, help_text="the worker time predicted at submit")
    progress_step = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    preview_name = models.CharField(
        max_length=200, blank=True, help_text="a rough JPEG of the image forming, while it runs"
    )
    generation_time = models.FloatField(null=True, blank=True, help_text="seconds on the worker")
    pipeline_time = models.FloatField(null=True, blank=True, help_text="of which in the diffusion pipeline")
    error = models.TextField(blank=True)
    details = models.JSONField(
        default=dict,
        blank=True,
        help_text="what a kind reports as it runs beyond its steps (a training's stage, loss, samples)",
    )
    idempotency_key = models.CharField(
        max_length=200, blank=True, help_text="the client's Idempotency-Key: a retry gets this job back (24 h)"
    )
    request_hash = models.CharField(
        max_length=64, blank=True, help_text="SHA-256 of the request an Idempotency-Key was given with"
    )
    webhook_status = models.CharField(
        max_length=16, blank=True, help_text='"" (no webhook), pending, delivered or failed'
    )
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True, help_text="when retention deleted its files")

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["user", "-id"]),
            models.Index(fields=["user", "status"]),
            models.Index(fields=["status", "finished_at"]),
            models.Index(fields=["queue_name", "id"], condition=models.Q(status="queued"), name="job_queued_position"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["queued", "running", "success", "failed", "canceled"]),
                name="job_status_valid",
            ),
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="job_idempotency_key_unique_per_user",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="success") | models.Q(generation_time__isnull=False),
                name="job_success_has_time",
            ),
        ]

    replayed = False  # set by jobs.submit when an idempotency key brought back an earlier job

    def __str__(self):
        return f"{self.kind} #{self.id} ({self.status})"

    @property
    def parameters(self) -> JobParams:
        """`params`, typed for the job's kind."""
        return kinds.parameters(self.kind, self.params)

    @property
    def operation(self) -> str:
        """What the client asked for: the kind, or the operation it is a preset of (object_removal)."""
        return self.params.get("operation") or self.kind

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCESS, self.Status.FAILED, self.Status.CANCELED)

    @property
    def queue_time(self) -> float | None:
        """Seconds from queued to started (None before a worker starts it)."""
        return (self.started_at - self.queued_at).total_seconds() if self.started_at else None

    @property
    def rq_job_id(self) -> str:
        """The RQ job of the current try: a re-queued job gets a new one, so a stale try can never touch it."""
        return f"job-{self.id}-{self.attempt}"

    @staticmethod
    def id_from_rq_job_id(rq_job_id: str) -> int | None:
        """The job id in an RQ job id that `rq_job_id` made (None for any other id)."""
        prefix, _, rest = rq_job_id.partition("-")
        number, _, attempt = rest.partition("-")
        return int(number) if prefix == "job" and number.isdigit() and attempt.isdigit() else None

    @property
    def thumbnail_url(self) -> str:
        return default_storage.url(self.thumbnail_name) if self.thumbnail_name else ""

    def output_name(self, index: int, suffix: str | None = None) -> str:
        return f"generations/{self.file_prefix}-{index}.{suffix or self.output_format}"


class WebhookAttempt(models.Model):
    """One try at POSTing a job's result to its webhook."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="webhook_attempts")
    number = models.PositiveSmallIntegerField()
    sent_at = models.DateTimeField(auto_now_add=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration = models.FloatField(help_text="seconds")

    class Meta:
        ordering = ["job", "number"]
        constraints = [models.UniqueConstraint(fields=["job", "number"], name="webhook_attempt_unique_number")]

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class LibraryModel(models.Model):
    """A checkpoint, LoRA, textual-inversion embedding, VAE, ControlNet, IP-Adapter or segmentation model that requests choose by its public id.

    Weights are safetensors only (a pickle file is code, not data). Files are checked when the entry is
    saved (generation/inputs/library.py), so a bad upload is refused in the admin, never at a user's first request.
    """

    ModelType = ModelType

    public_id = models.CharField(
        max_length=100,
        unique=True,
        validators=[RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", "Letters, digits, '.', '_' and '-' only.")],
        help_text="what clients send (model_id, lora_model, embeddings_model, vae, controlnet_model, ip_adapter_id); for an embedding, also the "
        "token its prompts use",
    )
    model_type = models.CharField(max_length=16, choices=ModelType.choices)
    name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    source = models.CharField(
        max_length=500,
        help_text="a local diffusers folder (checkpoint, VAE, ControlNet, IP-Adapter) or .safetensors file (LoRA, embedding) or .onnx file (segmentation), or "
        "storage:<name> for a .safetensors object in the configured storage",
    )
    content_hash = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the weights (keys worker caches)")
    size_bytes = models.BigIntegerField(default=0)
    plans = models.ManyToManyField("billing.Plan", blank=True, help_text="plans that may use it (none: every plan)")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="owned_models",
        help_text="the account that trained it: only it sees and uses the model (empty: the library's own)",
    )
    is_public = models.BooleanField(default=True, help_text="listed by model_list and in the playground")
    is_default = models.BooleanField(default=False, help_text="the checkpoint of requests that name none")
    credit_multiplier = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=1,
        validators=[MinValueValidator(0)],
        help_text="a job's credits are multiplied by this (rounded up)",
    )
    sampling = models.JSONField(
        default=dict,
        blank=True,
        help_text="a checkpoint's or LoRA's own sampling (a few-step model's): scheduler, timestep_spacing, steps, "
        "max_steps, guidance, min_guidance, max_guidance, eta (generation/kinds/sampling.py; addmodel --preset)",
    )
    license = models.CharField(
        max_length=200, blank=True, help_text='its licence, shown in the library (e.g. "SAI non-commercial")'
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model_type", "public_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="one_default_model"
            ),
            models.CheckConstraint(
                condition=models.Q(is_default=False) | models.Q(model_type="checkpoint"),
                name="only_checkpoints_are_default",
            ),
        ]

    def __str__(self):
        return f"{self.public_id} ({self.model_type})"

    def clean(self):
        try:
            Sampling.from_dict(self.sampling)
        except (TypeError, ValueError) as exc:
            raise ValidationError({"sampling": str(exc)}) from exc
        if self.sampling and self.model_type not in (ModelType.CHECKPOINT, ModelType.LORA):
            raise ValidationError({"sampling": "Only a checkpoint or a LoRA has sampling of its own."})

    @property
    def own_sampling(self) -> Sampling:
        return Sampling.from_dict(self.sampling)


class Upload(models.Model):
    """An image a client stored to send its URL later (image_editing/base64_to_url): free, counted against
    the account's UPLOAD_QUOTA_BYTES and deleted after UPLOAD_RETENTION_DAYS. Stored beside the outputs,
    so a later request that sends its URL reads it from storage like any output of this server."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads")
    name = models.CharField(max_length=200, unique=True, help_text="its storage name")
    size_bytes = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["user", "created_at"])]

    def __str__(self):
        return self.name
