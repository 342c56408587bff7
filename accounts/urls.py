from django.urls import path

from accounts import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("keys/", views.keys, name="dashboard-keys"),
    path("keys/<int:key_id>/revoke/", views.revoke_key, name="dashboard-revoke-key"),
    path("history/", views.history, name="dashboard-history"),
    path("jobs/<int:job_id>/", views.job_detail, name="dashboard-job"),
    path("jobs/<int:job_id>/status.json", views.job_status, name="dashboard-job-status"),
    path("jobs/<int:job_id>/cancel/", views.cancel_job, name="dashboard-job-cancel"),
    path("playground/", views.playground, name="dashboard-playground"),
    path("playground/run/", views.playground_run, name="dashboard-playground-run"),
    path("webhook/", views.webhook_secret, name="dashboard-webhook"),
]
