"""What both front-ends share: keys taken the way their clients send them, each API's own error bodies,
and submitting a translated request that then waits for its images on the event loop (these clients
cannot poll)."""

import base64
import binascii

from django.conf import settings
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.keys import authenticate_key
from generation.queueing import monitoring
from generation.web import refusals, waiting
from generation.web.parsers import ObjectJSONParser, check_body
from generation.web.submit import submit
from generation.web.throttling import AccountRateThrottle, GenerationRateThrottle

UNREADABLE_BODY = "The request body could not be read (too large, or not valid)."


def too_large() -> str:
    return f"The request body is too large: at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 2**20} MB."


class Refused(Exception):
    """A request a front-end answers with one of its own error bodies: `answer` is (status, body)."""

    def __init__(self, answer: tuple[int, dict]):
        super().__init__(answer)
        self.answer = answer


class BearerKey(BaseAuthentication):
    """`Authorization: Bearer <key>`, as OpenAI's SDKs and the front-ends built on them send it."""

    def authenticate(self, request):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return _authenticated(token.strip() if scheme.lower() == "bearer" else "")

    def authenticate_header(self, request):
        return "Bearer"


class BasicOrBearerKey(BearerKey):
    """A1111's `--api-auth`: HTTP Basic with the API key as the password (any user name), or Bearer."""

    def authenticate(self, request):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return super().authenticate(request)
        try:
            _, _, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise exceptions.AuthenticationFailed() from exc
        return _authenticated(password)

    def authenticate_header(self, request):
        return 'Basic realm="sdapi"'


def _authenticated(raw_key: str):
    api_key = authenticate_key(raw_key) if raw_key else None
    if api_key is None:
        raise exceptions.AuthenticationFailed()
    return api_key.user, api_key


class FrontendView(APIView):
    """A front-end endpoint: its API's authentication and error bodies (`answers`, a module with
    `invalid_key`, `invalid`, `rate_limited`, `no_credits`, `unavailable`, `server_error` and
    `after_wait`), requests per minute as the hosted API counts them."""

    answers = None
    answer_name = ""  # what generation/web/waiting.py builds the answer with once the job is done
    field_names = {}  # a hosted-API field -> the name this API's clients know it by (in errors)
    permission_classes = []
    throttle_classes = [AccountRateThrottle]
    parser_classes = [ObjectJSONParser, MultiPartParser, FormParser]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        check_body(request)

    @property
    def endpoint(self) -> str:
        """The name requests are counted under (/metrics): `openai_generations`, `a1111_txt2img`, ..."""
        return f"{self.answer_name}_{type(self).__name__.removesuffix('View').lower()}"

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if not response.has_header(waiting.CONTINUE_HEADER):  # else counted once its answer is known
            monitoring.count_request(self.endpoint, monitoring.http_outcome(response.status_code))
        return response

    def get_exception_handler(self):
        return self.handle_error

    def handle_error(self, exc, context) -> Response:
        status, body = exc.answer if isinstance(exc, Refused) else self.error_answer(refusals.classify(exc))
        headers = {}
        if status == 401:
            headers["WWW-Authenticate"] = self.get_authenticate_header(self.request) or "Bearer"
        if isinstance(exc, exceptions.Throttled):
            headers["Retry-After"] = str(int(exc.wait or 60))
        return Response(body, status=status, headers=headers)

    def error_answer(self, refusal: refusals.Refusal) -> tuple[int, dict]:
        """This API's answer to a refusal (its `answers` module's shapes)."""
        answers, reason = self.answers, refusal.reason
        if reason == refusals.INVALID:
            return self.invalid_field(*refusal.first_error)
        if reason == refusals.QUEUE_FULL:
            return answers.rate_limited(f"Too many requests in flight: at most {refusal.limit} queued at once.")
        if reason == refusals.NO_CREDITS:
            billing = self.request.build_absolute_uri("/billing/")
            return answers.no_credits(
                f"Insufficient credits: this request needs {refusal.needed} and your balance is {refusal.balance}. "
                f"Buy credits or upgrade your plan at {billing}"
            )
        if reason == refusals.METHOD:
            return answers.invalid("method", f"Method {refusal.method} not allowed.")
        if reason == refusals.REFUSED:
            return answers.invalid("body", refusal.message)
        return {
            refusals.BAD_KEY: answers.invalid_key,
            refusals.THROTTLED: answers.rate_limited,
            refusals.UNAVAILABLE: answers.unavailable,
            refusals.TOO_LARGE: lambda: answers.invalid("body", too_large()),
            refusals.UNREADABLE: lambda: answers.invalid("body", UNREADABLE_BODY),
        }.get(reason, answers.server_error)()

    def invalid_field(self, field: str, text: str) -> tuple[int, dict]:
        return self.answers.invalid(self.field_names.get(field, field), text)

    def validated(self, serializer_class, data: dict) -> dict:
        """The hosted API's serializer run on the translated request (the model library's paths)."""
        serializer = serializer_class(data=data, context={"model_library": True})
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def generate(self, submission: dict, options: dict) -> Response:
        """Queue the job, then answer once it ends (these clients cannot poll): FRONTEND_WAIT_SECONDS at
        most, on the event loop where the server has one."""
        answer = {"answer": self.answer_name, "options": options, "endpoint": self.endpoint}
        job, continuation = submit(self.request, submission, wait=settings.FRONTEND_WAIT_SECONDS, answer=answer)
        if continuation:
            return Response({}, headers=continuation)
        status, body = self.answers.after_wait(job.id, options)
        return Response(body, status=status)


class GenerationFrontendView(FrontendView):
    throttle_classes = [GenerationRateThrottle]
