from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from generation import views as pages
from generation.api import views


def endpoint(pattern, view, name=None):
    """A POST endpoint whose trailing slash is optional."""
    return re_path(rf"^{pattern}/?$", view.as_view(), name=name)


urlpatterns = [
    endpoint("api/v3/text2img", views.Text2ImgView, "v3-text2img"),
    endpoint("api/v3/img2img", views.Img2ImgView, "v3-img2img"),
    endpoint("api/v3/inpaint", views.InpaintView, "v3-inpaint"),
    endpoint("api/v3/super_resolution", views.SuperResolutionView, "v3-super-resolution"),
    endpoint("api/v3/fetch", views.FetchByBodyView, "v3-fetch-body"),
    endpoint(r"api/v3/fetch/(?P<job_id>\d+)", views.FetchView, "v3-fetch"),
    endpoint("api/v3/system_load", views.SystemLoadView, "v3-system-load"),
    # beyond v3
    endpoint("api/v3/cancel", views.CancelByBodyView, "v3-cancel-body"),
    endpoint(r"api/v3/cancel/(?P<job_id>\d+)", views.CancelView, "v3-cancel"),
    endpoint("api/v3/account", views.AccountView, "v3-account"),
    # compatibility aliases that real clients call
    endpoint("api/v3/dreambooth", views.Text2ImgView),
    endpoint("api/v3/dreambooth/img2img", views.Img2ImgView),
    endpoint(r"api/v3/dreambooth/fetch/(?P<job_id>\d+)", views.FetchView),
    endpoint("api/v4/dreambooth", views.Text2ImgView),
    endpoint("api/v4/dreambooth/img2img", views.Img2ImgView),
    endpoint("api/v4/dreambooth/inpaint", views.InpaintView),
    endpoint("api/v4/dreambooth/fetch", views.FetchByBodyView),
    endpoint(r"api/v4/dreambooth/fetch/(?P<job_id>\d+)", views.FetchView),
    endpoint("api/v5/super_resolution", views.SuperResolutionView),
    re_path(r"^healthz/?$", pages.healthz, name="healthz"),
    re_path(r"^metrics/?$", pages.metrics, name="metrics"),
    re_path(r"^api/schema/?$", SpectacularAPIView.as_view(), name="api-schema"),
    re_path(r"^api/docs/?$", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

# under /dashboard/, beside the account pages of accounts/urls.py
dashboard_patterns = [
    path("", pages.dashboard, name="dashboard"),
    path("history/", pages.history, name="dashboard-history"),
    path("jobs/<int:job_id>/", pages.job_detail, name="dashboard-job"),
    path("jobs/<int:job_id>/status.json", pages.job_status, name="dashboard-job-status"),
    path("jobs/<int:job_id>/cancel/", pages.cancel_job, name="dashboard-job-cancel"),
    path("playground/", pages.playground, name="dashboard-playground"),
    path("playground/run/", pages.playground_run, name="dashboard-playground-run"),
]


def v3_paths_only(endpoints):
    """drf-spectacular hook: document the v3 paths; the aliases behave the same (see the README)."""
    return [e for e in endpoints if e[0].startswith("/api/v3/") and "dreambooth" not in e[0]]
