from django.urls import path

from billing import views

urlpatterns = [
    path("pricing/", views.pricing, name="pricing"),
    path("billing/", views.billing, name="billing"),
    path("billing/plan/<slug:slug>/", views.change_plan, name="billing-change-plan"),
    path("billing/portal/", views.portal, name="billing-portal"),
    path("billing/stripe/webhook/", views.stripe_webhook, name="stripe-webhook"),
]
