from django.urls import path

from accounts import views

urlpatterns = [
    path("keys/", views.keys, name="dashboard-keys"),
    path("keys/<int:key_id>/revoke/", views.revoke_key, name="dashboard-revoke-key"),
    path("webhook/", views.webhook_secret, name="dashboard-webhook"),
]
