from django.conf import settings
from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from accounts import views as account_views
from generation.dashboard import views as generation_views
from generation.urls import dashboard_patterns

admin.site.site_header = "SDXL API administration"
admin.site.site_title = "SDXL API admin"
admin.site.index_title = "Users, plans, jobs and models"
admin.site.enable_nav_sidebar = False  # the jobs table needs the width (it fits 1280 px without it)

urlpatterns = [
    path("", account_views.home, name="home"),
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("accounts/", include("allauth.urls")),
    path("dashboard/", include("accounts.urls")),
    path("dashboard/", include(dashboard_patterns)),
    path("", include("billing.urls")),
    path("admin/django-rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
    path("", include("generation.urls")),
]

if settings.SERVE_MEDIA and settings.MEDIA_URL.startswith("/"):
    urlpatterns += [
        re_path(rf"^{settings.MEDIA_URL.strip('/')}/(?P<path>.*)$", generation_views.media),
    ]

handler400 = "generation.web.handlers.bad_request_page"
handler404 = "generation.web.handlers.page_not_found"
handler500 = "generation.web.handlers.server_error_page"
