from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView

from generation import kinds
from generation.api import training, views
from generation.dashboard import views as pages
from generation.frontends import a1111, openai
from generation.kinds.base import (
    ENTERPRISE,
    ENTERPRISE_IMAGES,
    ENTERPRISE_REALTIME,
    ENTERPRISE_TXT2IMG,
    IMAGE_EDITING,
    V3,
    V3_DREAMBOOTH,
    V4_DREAMBOOTH,
    V5,
    V6_IMAGES,
    V6_REALTIME,
    V7_IMAGES,
)


def endpoint(pattern, view, name=None, **family):
    """A POST endpoint whose trailing slash is optional. `family` tells its view where its answers'
    `fetch_result` points (`fetch_path`: the family's own fetch path) and whether its requests choose
    models from the library (`model_library`; v3 requests use the default model)."""
    return re_path(rf"^{pattern}/?$", view.as_view(), family or None, name=name)


JOB_ID = r"(?P<job_id>\d+)"
FETCH = {"fetch": views.FetchByBodyView, f"fetch/{JOB_ID}": views.FetchView}

# The hosted service's API families, each with its own endpoints; the operations of the kinds of job
# (generation/kinds/) are added to the families they name. Every family answers like v3; its
# `fetch_result` points at its own fetch path.
FAMILIES = {
    V3: {
        **FETCH,
        "system_load": views.SystemLoadView,
        # beyond v3
        "system_details": views.SystemDetailsView,
        "cancel": views.CancelByBodyView,
        f"cancel/{JOB_ID}": views.CancelView,
        "account": views.AccountView,
        f"jobs/{JOB_ID}/events": views.JobEventsView,
    },
    V3_DREAMBOOTH: {"model_list": views.ModelListView, **FETCH},
    V4_DREAMBOOTH: {"model_list": views.ModelListView, **FETCH},
    V5: FETCH,
    V6_IMAGES: FETCH,
    V6_REALTIME: FETCH,
    **dict.fromkeys(IMAGE_EDITING, {"base64_to_url": views.Base64ToUrlView, **FETCH}),
    ENTERPRISE: FETCH,
    ENTERPRISE_REALTIME: {**FETCH, "system_details": views.SystemDetailsView},
    ENTERPRISE_IMAGES: {**FETCH, "system_details": views.SystemDetailsView},
    ENTERPRISE_TXT2IMG: {
        **FETCH,
        "system_details": views.SystemDetailsView,
        "schedulers_list": views.SchedulersListView,
        "get_all_models": views.ModelListView,
        "verify_model": views.VerifyModelView,
        "upload_image": views.Base64ToUrlView,
    },
    V7_IMAGES: FETCH,
    "api/v6": {"base64_to_url": views.Base64ToUrlView},
}
NOT_OFFERED = r"(?P<operation>[A-Za-z0-9_\-]+)"  # an image-editing family's other operations: not offered here


def _family_routes(prefix: str):
    """A family's endpoints: its kinds' operations, then its own, then (image editing) any other name
    answered as not offered."""
    fetch_path = f"/{prefix}/fetch/" if f"fetch/{JOB_ID}" in FAMILIES[prefix] else "/api/v3/fetch/"
    family = {"fetch_path": fetch_path, "model_library": not prefix.startswith(V3)}
    for family_name, operation_path, operation in kinds.routes():
        if family_name == prefix:
            view = views.operation_view(operation, kinds.serializer(operation.name, prefix))
            realtime = prefix in (V6_REALTIME, ENTERPRISE_REALTIME)  # they run the deployment's fast model
            yield endpoint(f"{prefix}/{operation_path}".rstrip("/"), view, **family, realtime=realtime)
    for own_path, view in FAMILIES[prefix].items():
        yield endpoint(f"{prefix}/{own_path}", view, **family)
    if prefix in IMAGE_EDITING:
        offered = views.NotOfferedView.as_view(offered=[*kinds.offered(prefix), "base64_to_url"])
        yield re_path(rf"^{prefix}/{NOT_OFFERED}/?$", offered, family)


SANDBOX_V3 = "api/sandbox/v3"  # the training API free of charge and capped, for integrators' tests

urlpatterns = [
    *(route for prefix in FAMILIES for route in _family_routes(prefix)),
    # the training API (generation/api/training.py), and its sandbox
    *(
        endpoint(f"{prefix}/{training_path}", view, sandbox=prefix == SANDBOX_V3)
        for prefix in (V3, SANDBOX_V3)
        for training_path, view in training.ROUTES.items()
    ),
    # the front-ends (generation/frontends/): the OpenAI Images API and the AUTOMATIC1111 API
    re_path(r"^v1/images/generations/?$", openai.GenerationsView.as_view(), name="openai-generations"),
    re_path(r"^v1/images/edits/?$", openai.EditsView.as_view(), name="openai-edits"),
    re_path(r"^v1/images/variations/?$", openai.VariationsView.as_view(), name="openai-variations"),
    re_path(r"^v1/models/?$", openai.ModelsView.as_view(), name="openai-models"),
    re_path(r"^v1/models/(?P<model_id>[^/]+)/?$", openai.ModelsView.as_view(), name="openai-model"),
    *(re_path(rf"^sdapi/v1/{name}/?$", view.as_view(), name=f"a1111-{name}") for name, view in a1111.ROUTES.items()),
    re_path(r"^internal/ping/?$", a1111.PingView.as_view(), name="a1111-ping"),
    path("docs/", pages.docs, name="docs"),
    path("docs/<slug:page>/", pages.docs, name="docs-page"),
    re_path(r"^healthz/?$", pages.healthz, name="healthz"),
    re_path(r"^metrics/?$", pages.metrics, name="metrics"),
    re_path(r"^api/schema/?$", SpectacularAPIView.as_view(), name="api-schema"),
    re_path(r"^api/docs/?$", views.OpenApiBrowserView.as_view(url_name="api-schema"), name="api-docs"),
]

# under /dashboard/, beside the account pages of accounts/urls.py
dashboard_patterns = [
    path("", pages.dashboard, name="dashboard"),
    path("history/", pages.history, name="dashboard-history"),
    path("jobs/<int:job_id>/", pages.job_detail, name="dashboard-job"),
    path("jobs/<int:job_id>/status.json", pages.job_status, name="dashboard-job-status"),
    path("jobs/<int:job_id>/events/", pages.job_events, name="dashboard-job-events"),
    path("jobs/<int:job_id>/cancel/", pages.cancel_job, name="dashboard-job-cancel"),
    path("jobs/<int:job_id>/inputs/<slug:field>.png", pages.job_input, name="dashboard-job-input"),
    path("playground/", pages.playground, name="dashboard-playground"),
    path("playground/run/", pages.playground_run, name="dashboard-playground-run"),
    path("train/", pages.train, name="dashboard-train"),
    path("train/run/", pages.train_run, name="dashboard-train-run"),
    path("train/<slug:training_id>/status.json", pages.training_status, name="dashboard-training-status"),
    path("train/<slug:training_id>/cancel/", pages.training_cancel, name="dashboard-training-cancel"),
    path("train/<slug:training_id>/lora.safetensors", pages.training_download, name="dashboard-training-download"),
]


def v3_paths_only(endpoints):
    """drf-spectacular hook: document the v3 paths; the other families behave the same (see docs and README)."""
    return [e for e in endpoints if e[0].startswith("/api/v3/") and "dreambooth" not in e[0]]
