"""v3 API views: validate with a serializer, call a service, render a body from hosted."""

from functools import cache

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from drf_spectacular.views import SpectacularSwaggerSplitView
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import credits
from generation import services
from generation.answers import hosted, selectors
from generation.api import errors
from generation.api.authentication import ApiKeyAuthentication
from generation.api.serializers import Base64ToUrlSerializer, FetchSerializer, VerifyModelSerializer
from generation.inputs import library, storage
from generation.kinds import schedulers
from generation.kinds.base import Operation
from generation.queueing import monitoring
from generation.web import waiting
from generation.web.parsers import LenientRequest
from generation.web.submit import submit
from generation.web.throttling import AccountRateThrottle, GenerationRateThrottle

GENERATION_EXAMPLE = OpenApiExample(
    "success",
    response_only=True,
    value={
        "status": "success",
        "generationTime": 1.32,
        "id": 12202888,
        "output": ["https://host/media/generations/2f0c...-0.png"],
        "meta": {
            "H": 512,
            "W": 512,
            "enable_attention_slicing": "true",
            "file_prefix": "2f0c...",
            "guidance_scale": 7.5,
            "model": "sdxl",
            "n_samples": 1,
            "negative_prompt": "",
            "outdir": "out",
            "prompt": "a lighthouse at dusk",
            "revision": "fp16",
            "safetychecker": "no",
            "seed": 1234,
            "steps": 30,
            "vae": "default",
            "scheduler": "UniPCMultistepScheduler",
        },
    },
)
PROCESSING_EXAMPLE = OpenApiExample(
    "processing",
    response_only=True,
    value={
        "status": "processing",
        "eta": 12.5,
        "id": 12202889,
        "output": [],
        "message": hosted.PROCESSING_MESSAGE,
        "messege": hosted.PROCESSING_MESSAGE,
        "fetch_result": "https://host/api/v3/fetch/12202889",
        "future_links": ["https://host/media/generations/2f0c...-0.png"],
    },
)
ERROR_EXAMPLE = OpenApiExample(
    "validation error",
    response_only=True,
    value={
        "status": "error",
        "message": {"prompt": ["The prompt field is required."]},
        "messege": {"prompt": ["The prompt field is required."]},
    },
)
JOB_BODY = inline_serializer(
    "JobResponse",
    fields={
        "status": serializers.CharField(),
        "id": serializers.IntegerField(required=False),
        "output": serializers.JSONField(required=False),
        "generationTime": serializers.FloatField(required=False),
        "meta": serializers.DictField(required=False),
        "eta": serializers.FloatField(required=False),
        "message": serializers.JSONField(required=False),
    },
)
KEY_ONLY = inline_serializer("KeyOnly", fields={"key": serializers.CharField()})


class V3View(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = []
    throttle_classes = [AccountRateThrottle]

    def initialize_request(self, request, *args, **kwargs):
        """DRF's, with fields from the query string too (see LenientRequest)."""
        return LenientRequest(
            request,
            parsers=self.get_parsers(),
            authenticators=self.get_authenticators(),
            negotiator=self.get_content_negotiator(),
            parser_context=self.get_parser_context(request),
        )

    @property
    def endpoint(self) -> str:
        """The name requests are counted under (/metrics)."""
        return type(self).__name__.removesuffix("View").lower()

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if not response.has_header(waiting.CONTINUE_HEADER):  # counted once its answer is known
            status = response.data.get("status", "") if isinstance(response.data, dict) else ""
            monitoring.count_request(self.endpoint, status)
        return response


class GenerationView(V3View):
    """Queue a job, wait up to GENERATION_WAIT_SECONDS for it (unless `instant_response`), answer success
    or processing. The ASGI web tier does the waiting on its event loop (generation/web/waiting.py): this
    view only admits the job and hands the wait over. One class per operation and serializer
    (`operation_view`), all made from the registry of kinds."""

    serializer_class = None
    operation = ""
    throttle_classes = [GenerationRateThrottle]

    @property
    def endpoint(self) -> str:
        return self.operation

    def post(self, request, fetch_path=hosted.V3_FETCH_PATH, model_library=False, realtime=False):
        context = {"model_library": model_library, "realtime": realtime}
        serializer = self.serializer_class(data=request.data, context=context)
        serializer.is_valid(raise_exception=True)
        submission = serializer.validated_data
        idempotency_key = request.headers.get("Idempotency-Key", "") or submission["idempotency_key"]
        job, continuation = submit(
            request,
            submission,
            wait=0.0 if submission["instant"] else settings.GENERATION_WAIT_SECONDS,
            answer={"fetch_path": fetch_path, "endpoint": self.endpoint},
            idempotency_key=idempotency_key,
            request_hash=services.request_hash(submission["params"].kind, request.data) if idempotency_key else "",
        )
        headers = {"Idempotent-Replayed": "true"} if job.replayed else {}
        if continuation:
            return Response({}, headers={**headers, **continuation})
        return Response(hosted.for_request(job, fetch_path), headers=headers or None)


@cache
def operation_view(operation: Operation, serializer) -> type[GenerationView]:
    """The view of an operation read by `serializer` (a family may read an operation its own way), with
    its OpenAPI description."""
    view = type(
        f"{operation.name.title().replace('_', '')}View",
        (GenerationView,),
        {"serializer_class": serializer, "operation": operation.name, "__doc__": operation.summary},
    )
    return extend_schema(
        request=serializer,
        responses=JOB_BODY,
        summary=operation.summary,
        examples=[GENERATION_EXAMPLE, PROCESSING_EXAMPLE, ERROR_EXAMPLE],
    )(view)


class Base64ToUrlView(V3View):
    throttle_classes = [GenerationRateThrottle]

    def post(self, request, **kwargs):
        serializer = Base64ToUrlSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        source = serializer.validated_data["init_image"]
        return Response(services.store_upload(user=request.user, source=source, base_url=storage.base_url_for(request)))


class NotOfferedView(V3View):
    """An operation of an API family that this deployment does not offer: said, listing what it does."""

    offered: list[str] = []

    def post(self, request, operation, **kwargs):
        return Response(errors.not_offered(operation, self.offered))


def requested_job_id(request, job_id=None):
    """The job id from the path, else the body's `request_id` (validated like the rest of the body)."""
    serializer = FetchSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    return job_id or serializer.validated_data["request_id"]


@extend_schema(
    request=FetchSerializer,
    responses=JOB_BODY,
    summary="The result of a queued request",
    examples=[GENERATION_EXAMPLE, ERROR_EXAMPLE],
)
class FetchView(V3View):
    @extend_schema(operation_id="fetch")
    def post(self, request, job_id=None, **kwargs):
        return Response(services.fetch_answer(user=request.user, job_id=requested_job_id(request, job_id)))


class FetchByBodyView(FetchView):
    @extend_schema(operation_id="fetch_by_request_id", summary="The result of a queued request (id as request_id)")
    def post(self, request, job_id=None, **kwargs):
        return super().post(request, job_id, **kwargs)


@extend_schema(
    request=FetchSerializer,
    responses=JOB_BODY,
    summary="Cancel a queued or running request (beyond v3)",
    description="A queued job leaves the queue, a running one stops at its next denoising step; both end "
    'with a full refund and fetch answers status "failed", message "Canceled", '
    '"canceled": true. A finished job is left alone. Idempotent.',
    examples=[
        OpenApiExample(
            "canceled",
            response_only=True,
            value={
                "status": "failed",
                "id": 12202889,
                "message": "Canceled",
                "messege": "Canceled",
                "output": [],
                "canceled": True,
            },
        )
    ],
)
class CancelView(V3View):
    @extend_schema(operation_id="cancel")
    def post(self, request, job_id=None, **kwargs):
        job = services.cancel_job(user=request.user, job_id=requested_job_id(request, job_id))
        return Response(hosted.for_fetch(job))


class CancelByBodyView(CancelView):
    @extend_schema(operation_id="cancel_by_request_id", summary="Cancel a request (id as request_id; beyond v3)")
    def post(self, request, job_id=None, **kwargs):
        return super().post(request, job_id, **kwargs)


class AnyAccept(BaseContentNegotiation):
    """JSON whatever the client accepts: an event-stream client gets its refusals in the envelope."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


@extend_schema(
    request=None,
    responses={(200, "text/event-stream"): str},
    summary="The job's progress as Server-Sent Events (beyond v3)",
    description="`GET` with the key in a header (`Authorization: Bearer`, `Key` or `X-API-Key`; never in the "
    "URL). Events: `processing` (where the job stands: `queue_position`, `progress`, `eta`, `preview`, sent "
    "at once and on every change) and `result` (the body fetch answers), then the stream ends. A comment "
    "line every 15 s keeps it open. A stream holds no thread or database connection while it waits.",
)
class JobEventsView(V3View):
    content_negotiation_class = AnyAccept

    def get(self, request, job_id, **kwargs):
        job = services.fetch_job(user=request.user, job_id=job_id)
        if not waiting.can_continue(request):
            return Response(errors.streams_unavailable())
        return Response({}, headers=waiting.continuation(stream=job.id, format="api"))


@extend_schema(
    request=KEY_ONLY,
    responses=inline_serializer(
        "Account",
        fields={
            "status": serializers.CharField(),
            "email": serializers.CharField(),
            "plan": serializers.DictField(),
            "credits": serializers.IntegerField(),
            "queued_jobs": serializers.IntegerField(),
            "running_jobs": serializers.IntegerField(),
            "limits": serializers.DictField(),
        },
    ),
    summary="Plan, credits left, jobs in flight and limits (beyond v3)",
    examples=[
        OpenApiExample(
            "account",
            response_only=True,
            value={
                "status": "success",
                "email": "you@example.com",
                "plan": {"name": "Free", "slug": "free", "monthly_credits": 100, "priority": "low"},
                "credits": 97,
                "queued_jobs": 1,
                "running_jobs": 0,
                "limits": {"max_queued_jobs": 10, "requests_per_minute": 60, "max_resolution": 1024, "max_samples": 4},
                "subscription_status": None,
                "credits_renew_at": "2026-12-25T17:54:09+00:00",
                "current_period_end": None,
            },
        )
    ],
)
class AccountView(V3View):
    def post(self, request, **kwargs):
        return Response(selectors.account_summary(request.user))


@extend_schema(
    request=KEY_ONLY,
    responses=inline_serializer(
        "SystemLoad",
        fields={
            "queue_num": serializers.IntegerField(),
            "queue_time": serializers.IntegerField(),
            "status": serializers.CharField(),
        },
    ),
    summary="Queued requests and the estimated queue time",
    examples=[OpenApiExample("ok", response_only=True, value={"queue_num": 3, "queue_time": 12, "status": "ok"})],
)
class SystemLoadView(V3View):
    def post(self, request, **kwargs):
        return Response(selectors.system_load())


@extend_schema(
    request=KEY_ONLY,
    responses=inline_serializer(
        "SystemDetails",
        fields={
            "queue_num": serializers.IntegerField(),
            "queue_time": serializers.IntegerField(),
            "status": serializers.CharField(),
            "workers": serializers.ListField(child=serializers.DictField()),
        },
    ),
    summary="system_load plus the live workers: device, model, queues, busy (the enterprise API's system_details)",
    examples=[
        OpenApiExample(
            "ok",
            response_only=True,
            value={
                "queue_num": 3,
                "queue_time": 12,
                "status": "ok",
                "workers": [{"device": "cuda", "model": "sdxl-base-1.0", "queues": ["high", "default"], "busy": True}],
            },
        )
    ],
)
class SystemDetailsView(V3View):
    def post(self, request, **kwargs):
        return Response(selectors.system_details())


@extend_schema(
    request=KEY_ONLY,
    responses=inline_serializer(
        "ModelList", fields={"model_id": serializers.CharField(), "kind": serializers.CharField()}
    ),
    summary="The library models the key's plan may use (the dreambooth API's model_list: a JSON list)",
)
class ModelListView(V3View):
    def post(self, request, **kwargs):
        return Response(
            hosted.model_list(library.listed(credits.account_for(request.user, loaded=True).plan, request.user))
        )


class SchedulersListView(V3View):
    """The enterprise SDK's schedulers_list: the scheduler names requests may send."""

    def post(self, request, **kwargs):
        return Response({"status": "success", "data": schedulers.DIFFUSERS_SCHEDULERS})


class VerifyModelView(V3View):
    """The enterprise SDK's verify_model: whether the key's plan may use a library model of that id."""

    def post(self, request, **kwargs):
        serializer = VerifyModelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model_id = serializer.validated_data["model_id"].strip()
        plan = credits.account_for(request.user, loaded=True).plan
        if model_id not in {entry.public_id for entry in library.listed(plan, request.user)}:
            return Response(errors.validation({"model_id": [f"The model_id {model_id!r} does not exist."]}))
        return Response({"status": "success", "message": f"The model {model_id!r} is ready.", "model_id": model_id})


class OpenApiBrowserView(SpectacularSwaggerSplitView):
    """Swagger UI, its script served apart (the pages' policy runs no inline script). It sets inline
    styles of its own, so this page, which shows no user content, allows them."""

    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        response.allow_inline_styles = True
        return response
