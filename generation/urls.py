from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView

from generation import views as pages
from generation.api import views
from generation.frontends import a1111, openai


def endpoint(pattern, view, name=None, **family):
    """A POST endpoint whose trailing slash is optional. `family` tells its view where its answers'
    `fetch_result` points (`fetch_path`: the family's own fetch path) and whether its requests choose
    models from the library (`model_library`; v3 requests use the default model)."""
    return re_path(rf"^{pattern}/?$", view.as_view(), family or None, name=name)


JOB_ID = r"(?P<job_id>\d+)"
GENERATE = {"text2img": views.Text2ImgView, "img2img": views.Img2ImgView, "inpaint": views.InpaintView}
FETCH = {"fetch": views.FetchByBodyView, f"fetch/{JOB_ID}": views.FetchView}
IMAGE_EDITING = {
    "outpaint": views.OutpaintView,
    "object_removal": views.ObjectRemovalView,
    "inpaint": views.EditingInpaintView,
    "img_mixer": views.ImgMixerView,
    "removebg_mask": views.RemoveBgView,
    "super_resolution": views.SuperResolutionView,
    "base64_to_url": views.Base64ToUrlView,
    **FETCH,
    r"(?P<operation>[A-Za-z0-9_\-]+)": views.NotOfferedView,  # last: any other operation is not offered
}

# The hosted service's API families, each with its operations (path -> view). Every family answers like
# v3; its `fetch_result` points at its own fetch path.
FAMILIES = {
    "api/v3/dreambooth": {
        "": views.Text2ImgView,
        "img2img": views.Img2ImgView,
        "model_list": views.ModelListView,
        **FETCH,
    },
    "api/v4/dreambooth": {
        "": views.Text2ImgView,
        "img2img": views.Img2ImgView,
        "inpaint": views.InpaintView,
        "model_list": views.ModelListView,
        **FETCH,
    },
    "api/v5": {"super_resolution": views.SuperResolutionView, "controlnet": views.ControlNetView, **FETCH},
    "api/v6/images": {**GENERATE, "controlnet": views.ControlNetView, **FETCH},
    "api/v6/realtime": {**GENERATE, **FETCH},
    "api/v6/image_editing": IMAGE_EDITING,
    "api/v1/image_editing": IMAGE_EDITING,
    "api/v1/enterprise/image_editing": IMAGE_EDITING,
    "api/v1/enterprise": {"controlnet": views.ControlNetView, **FETCH},
    "api/v1/enterprise/realtime": {**GENERATE, **FETCH, "system_details": views.SystemDetailsView},
    "api/v1/enterprise/images": {**GENERATE, **FETCH, "system_details": views.SystemDetailsView},
    "api/v7/images": {
        "text-to-image": views.Text2ImgView,
        "image-to-image": views.Img2ImgView,
        "inpaint": views.InpaintView,
        **FETCH,
    },
}


A1111 = {
    "txt2img": a1111.Txt2ImgView,
    "img2img": a1111.Img2ImgView,
    "extra-single-image": a1111.ExtraSingleImageView,
    "sd-models": a1111.ModelsView,
    "options": a1111.OptionsView,
    "samplers": a1111.SamplersView,
    "schedulers": a1111.SchedulersView,
    "upscalers": a1111.UpscalersView,
    "latent-upscale-modes": a1111.LatentUpscaleModesView,
    "sd-vae": a1111.VaesView,
    "loras": a1111.LorasView,
    "embeddings": a1111.EmbeddingsView,
    "progress": a1111.ProgressView,
    "interrupt": a1111.InterruptView,
    "skip": a1111.InterruptView,
    "cmd-flags": a1111.CmdFlagsView,
    "scripts": a1111.ScriptsView,
    **{name: a1111.EmptyListView for name in ("hypernetworks", "face-restorers", "prompt-styles", "sd-modules")},
    **{
        name: a1111.RefreshView for name in ("refresh-checkpoints", "refresh-loras", "refresh-vae", "reload-checkpoint")
    },
}


def _fetch_path(prefix: str, operations: dict) -> str:
    """The family's own fetch path, or v3's for a family without one."""
    return f"/{prefix}/fetch/" if f"fetch/{JOB_ID}" in operations else "/api/v3/fetch/"


urlpatterns = [
    endpoint("api/v3/text2img", views.Text2ImgView, "v3-text2img"),
    endpoint("api/v3/img2img", views.Img2ImgView, "v3-img2img"),
    endpoint("api/v3/inpaint", views.InpaintView, "v3-inpaint"),
    endpoint("api/v3/super_resolution", views.SuperResolutionView, "v3-super-resolution"),
    endpoint("api/v3/fetch", views.FetchByBodyView, "v3-fetch-body"),
    endpoint(rf"api/v3/fetch/{JOB_ID}", views.FetchView, "v3-fetch"),
    endpoint("api/v3/system_load", views.SystemLoadView, "v3-system-load"),
    # beyond v3
    endpoint("api/v3/system_details", views.SystemDetailsView, "v3-system-details"),
    endpoint("api/v3/cancel", views.CancelByBodyView, "v3-cancel-body"),
    endpoint(rf"api/v3/cancel/{JOB_ID}", views.CancelView, "v3-cancel"),
    endpoint("api/v3/account", views.AccountView, "v3-account"),
    endpoint(rf"api/v3/jobs/{JOB_ID}/events", views.JobEventsView, "v3-job-events"),
    *(
        endpoint(
            f"{prefix}/{path}".rstrip("/"),
            view,
            fetch_path=_fetch_path(prefix, operations),
            model_library=not prefix.startswith("api/v3/"),
        )
        for prefix, operations in FAMILIES.items()
        for path, view in operations.items()
    ),
    # the front-ends (generation/frontends/): the OpenAI Images API and the AUTOMATIC1111 API
    re_path(r"^v1/images/generations/?$", openai.GenerationsView.as_view(), name="openai-generations"),
    re_path(r"^v1/images/edits/?$", openai.EditsView.as_view(), name="openai-edits"),
    re_path(r"^v1/images/variations/?$", openai.VariationsView.as_view(), name="openai-variations"),
    re_path(r"^v1/models/?$", openai.ModelsView.as_view(), name="openai-models"),
    re_path(r"^v1/models/(?P<model_id>[^/]+)/?$", openai.ModelsView.as_view(), name="openai-model"),
    *(re_path(rf"^sdapi/v1/{name}/?$", view.as_view(), name=f"a1111-{name}") for name, view in A1111.items()),
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
]


def v3_paths_only(endpoints):
    """drf-spectacular hook: document the v3 paths; the other families behave the same (see docs and README)."""
    return [e for e in endpoints if e[0].startswith("/api/v3/") and "dreambooth" not in e[0]]
