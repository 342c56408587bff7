"""Every body the OpenAI Images API front-end (`/v1/...`, generation/frontends/openai.py) answers, with its
HTTP status, in OpenAI's shapes: images as `{"created", "data": [...]}`, errors as
`{"error": {"message", "type", "param", "code"}}` with OpenAI's status codes, so that the official SDKs
raise their own typed exceptions. Here, below the API packages, so the event loop's wait
(generation/web/waiting.py) builds the answer of a job it waited for."""

import base64

from generation.inputs import storage
from generation.models import Job


def error(status: int, text: str, error_type: str = "invalid_request_error", param=None, code=None) -> tuple[int, dict]:
    return status, {"error": {"message": text, "type": error_type, "param": param, "code": code}}


def invalid_key() -> tuple[int, dict]:
    return error(401, "Incorrect API key provided.", code="invalid_api_key")


def invalid(param: str, text: str) -> tuple[int, dict]:
    return error(400, text, param=param)


def unknown_model(model: str) -> tuple[int, dict]:
    return error(
        404,
        f"The model '{model}' does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def rate_limited(text: str = "Rate limit reached for requests.") -> tuple[int, dict]:
    return error(429, text, error_type="requests", code="rate_limit_exceeded")


def no_credits(text: str) -> tuple[int, dict]:
    return error(429, text, error_type="insufficient_quota", code="insufficient_quota")


def unavailable() -> tuple[int, dict]:
    return error(503, "The server is temporarily unavailable; try again in a few seconds.", error_type="server_error")


def server_error(text: str = "The server had an error while processing your request.") -> tuple[int, dict]:
    return error(500, text, error_type="server_error")


def images(job: Job, response_format: str) -> tuple[int, dict]:
    """The finished job's images (`b64_json` or `url`), or the error that ended it; a job still running
    when the wait ran out is a timeout that says where to find it."""
    if job.status == Job.Status.SUCCESS:
        urls = storage.output_urls(job)
        data = []
        for name, url in zip(job.output_names, urls):
            if response_format == "url":
                data.append({"url": url, "revised_prompt": job.params.get("prompt", "")})
            else:
                encoded = base64.b64encode(storage.read_bytes(name) or b"").decode()
                data.append({"b64_json": encoded, "revised_prompt": job.params.get("prompt", "")})
        return 200, {"created": int(job.finished_at.timestamp()), "data": data}
    if job.is_finished:
        return server_error(f"The image could not be generated: {job.error or job.status}.")
    return error(
        504,
        f"The image is still being generated (job {job.id}); it will be in your history when done.",
        error_type="server_error",
        code="timeout",
    )


def after_wait(job_id: int, options: dict) -> tuple[int, dict]:
    return images(Job.objects.get(pk=job_id), options["response_format"])


def model(entry) -> dict:
    return {
        "id": entry.public_id,
        "object": "model",
        "created": int(entry.created_at.timestamp()),
        "owned_by": "library",
    }


def models(entries) -> dict:
    return {"object": "list", "data": [model(entry) for entry in entries]}
