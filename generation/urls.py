from django.urls import re_path

from generation.api import views

urlpatterns = [
    re_path(r"^api/v3/text2img/?$", views.Text2ImgView.as_view(), name="v3-text2img"),
    re_path(r"^api/v3/fetch/?$", views.FetchView.as_view(), name="v3-fetch-body"),
    re_path(r"^api/v3/fetch/(?P<job_id>\d+)/?$", views.FetchView.as_view(), name="v3-fetch"),
    re_path(r"^api/v3/system_load/?$", views.SystemLoadView.as_view(), name="v3-system-load"),
]
