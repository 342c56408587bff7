"""Admin: jobs (read-only, deleted with their files), the queue-load page and the image gallery."""

from datetime import datetime
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.db import transaction
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from generation.answers import selectors
from generation.inputs import library, storage
from generation.kinds.sampling import PRESETS, with_preset
from generation.lifecycle import jobs
from generation.models import Job, LibraryModel, Upload, WebhookAttempt

GALLERY_PAGE_SIZE = 48


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ["number", "sent_at", "status_code", "error", "duration"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "preview", "user", "kind", "status", "queue_name", "queued_at", "generation_time"]
    list_display_links = ["id", "preview"]
    list_filter = ["status", "kind", "queue_name", "queued_at"]
    search_fields = ["=id", "user__email"]
    date_hierarchy = "queued_at"
    list_select_related = ["user"]

    class Media:
        css = {"all": ["admin.css"]}  # the pages' policy allows no inline style

    readonly_fields = [
        "preview_large",
        "user",
        "api_key",
        "kind",
        "status",
        "params",
        "seed",
        "file_prefix",
        "output_format",
        "output_names",
        "thumbnail_name",
        "base_url",
        "queue_name",
        "attempt",
        "runs",
        "worker_name",
        "progress_step",
        "progress_total",
        "generation_time",
        "pipeline_time",
        "error",
        "webhook_status",
        "queued_at",
        "started_at",
        "finished_at",
        "expired_at",
    ]
    fields = readonly_fields
    inlines = [WebhookAttemptInline]
    change_list_template = "admin/generation/job/change_list.html"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # jobs change state only through generation/lifecycle/jobs.py

    @admin.display(description="image")
    def preview(self, job):
        return (
            format_html('<img src="{}" alt="" class="job-thumbnail">', job.thumbnail_url)
            if job.thumbnail_name and not job.expired_at
            else "–"
        )

    @admin.display(description="outputs")
    def preview_large(self, job):
        if job.expired_at or not job.output_names:
            return "–"
        return format_html_join(
            "",
            '<a href="{}"><img src="{}" alt="" class="job-output"></a>',
            ((url, url) for url in storage.output_urls(job)),
        )

    def delete_model(self, request, obj):
        jobs.cancel(obj)  # an unfinished job is refunded and frees its queue slot first
        storage.delete_files(obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for job in queryset:
            jobs.cancel(job)
            storage.delete_files(job)
        super().delete_queryset(request, queryset)

    def get_urls(self):
        return [
            path("queue/", self.admin_site.admin_view(self.queue_view), name="generation_job_queue"),
            path("gallery/", self.admin_site.admin_view(self.gallery_view), name="generation_job_gallery"),
        ] + super().get_urls()

    def queue_view(self, request):
        """Queued per queue, running, failed, workers and their heartbeats, throughput, ETA; refreshes itself."""
        context = {
            **self.admin_site.each_context(request),
            "title": "Queue load",
            "opts": self.model._meta,
            "overview": selectors.queue_overview(),
        }
        return TemplateResponse(request, "admin/generation/job/queue.html", context)

    def gallery_view(self, request):
        """Every generated image (the first of a job as its thumbnail), filtered by user, kind, status and
        date; paged by job."""
        jobs = Job.objects.exclude(thumbnail_name="").filter(expired_at__isnull=True).select_related("user")
        filters = {key: request.GET.get(key, "").strip() for key in ("user", "kind", "status", "since", "until")}
        if filters["user"]:
            jobs = jobs.filter(user__email__icontains=filters["user"])
        if filters["kind"]:
            jobs = jobs.filter(kind=filters["kind"])
        if filters["status"]:
            jobs = jobs.filter(status=filters["status"])
        for key, lookup in (("since", "queued_at__date__gte"), ("until", "queued_at__date__lte")):
            try:
                if filters[key]:
                    jobs = jobs.filter(**{lookup: datetime.strptime(filters[key], "%Y-%m-%d").date()})
            except ValueError:
                filters[key] = ""
        page = Paginator(jobs.order_by("-id"), GALLERY_PAGE_SIZE).get_page(request.GET.get("page"))
        query = urlencode({key: value for key, value in filters.items() if value})
        tiles = [
            {"job": job, "url": job.thumbnail_url if index == 0 else default_storage.url(name), "index": index}
            for job in page
            for index, name in enumerate(job.output_names)
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Gallery",
            "opts": self.model._meta,
            "page": page,
            "tiles": tiles,
            "image_count": sum(len(names) for names in jobs.values_list("output_names", flat=True)),
            "filters": filters,
            "query": query,
            "kinds": Job.Kind.choices,
            "statuses": Job.Status.choices,
            "change_url": reverse("admin:generation_job_changelist"),
        }
        return TemplateResponse(request, "admin/generation/job/gallery.html", context)


class LibraryModelForm(forms.ModelForm):
    """Checks the files before anything is saved: a bad upload is refused here, never at a user's request.
    `preset` fills the sampling of a few-step family (what is typed into `sampling` as well overrides it)."""

    preset = forms.ChoiceField(
        choices=[("", "—"), *((name, name) for name in PRESETS)],
        required=False,
        help_text="a few-step family's sampling: " + "; ".join(f"{n}: {p.describe()}" for n, p in PRESETS.items()),
    )

    class Meta:
        model = LibraryModel
        fields = [
            "public_id",
            "model_type",
            "name",
            "description",
            "source",
            "plans",
            "is_public",
            "is_default",
            "credit_multiplier",
            "sampling",
            "license",
        ]

    def clean(self):
        data = super().clean()
        if data.get("preset"):
            try:
                data["sampling"] = with_preset(data["preset"], data.get("sampling") or {})
            except (TypeError, ValueError) as exc:
                self.add_error("sampling", str(exc))
        if data.get("is_default") and data.get("model_type") != LibraryModel.ModelType.CHECKPOINT:
            self.add_error("is_default", "Only a checkpoint can be the default.")
        if data.get("source") and data.get("model_type"):
            try:
                self.instance.content_hash, self.instance.size_bytes = library.check(data["source"], data["model_type"])
            except library.InvalidModelFile as exc:
                self.add_error("source", f"Refused: {exc}.")
        return data


@admin.register(LibraryModel)
class LibraryModelAdmin(admin.ModelAdmin):
    """The model library: checkpoints, LoRAs, embeddings, VAEs, ControlNets, IP-Adapters and segmentation
    models that requests choose by id."""

    form = LibraryModelForm
    list_display = [
        "public_id",
        "model_type",
        "name",
        "owner",
        "is_default",
        "is_public",
        "credit_multiplier",
        "size",
        "sampling_used",
        "license",
        "created_at",
    ]
    list_filter = ["model_type", "is_public", "plans", ("owner", admin.EmptyFieldListFilter)]
    search_fields = ["public_id", "name", "owner__email"]
    readonly_fields = ["content_hash", "size_bytes", "created_at"]
    raw_id_fields = ["owner"]
    filter_horizontal = ["plans"]

    @admin.display(description="size")
    def size(self, entry):
        return f"{entry.size_bytes / 2**20:.1f} MiB"

    @admin.display(description="sampling")
    def sampling_used(self, entry):
        return entry.own_sampling.describe() or "the request's"

    @transaction.atomic
    def save_model(self, request, obj, form, change):
        if obj.is_default:
            library.make_default(obj)
        super().save_model(request, obj, form, change)


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    """Images clients stored with base64_to_url (deleted after UPLOAD_RETENTION_DAYS); deleting one here
    deletes its file."""

    list_display = ["name", "user", "size", "created_at"]
    list_filter = ["created_at"]
    search_fields = ["user__email", "name"]
    readonly_fields = ["user", "name", "size_bytes", "created_at"]

    @admin.display(description="size")
    def size(self, upload):
        return f"{upload.size_bytes / 2**10:.0f} KiB"

    def has_add_permission(self, request):
        return False

    def delete_model(self, request, obj):
        storage.delete_names([obj.name])
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        storage.delete_names([upload.name for upload in queryset])
        super().delete_queryset(request, queryset)
