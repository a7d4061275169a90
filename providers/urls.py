from django.urls import path

from providers import custom_views, views

app_name = "providers"
urlpatterns = [
    path("connect/", views.connect, name="connect"),
    path("connect/custom/", custom_views.custom_new, name="custom-new"),
    path("connect/<slug:kind_id>/", views.setup, name="connect-kind"),
    path("custom/<slug:kind_id>/edit/", custom_views.custom_edit, name="custom-edit"),
    path("custom/<slug:kind_id>/delete/", custom_views.custom_delete, name="custom-delete"),
    path("<slug:provider_id>/models/", views.models, name="models"),
    path("settings/", views.settings, name="settings"),
    path("settings/default-model/", views.default_model, name="default-model"),
    path("settings/reload/", views.reload_files, name="reload"),
    path("<slug:provider_id>/toggle/", views.toggle, name="toggle"),
    path("<slug:provider_id>/breaker/reset/", views.breaker_reset, name="breaker-reset"),
    path("<slug:provider_id>/sync/", views.sync, name="sync"),
    path("<slug:provider_id>/edit/", views.setup, name="edit"),
    path("<slug:provider_id>/delete/", views.delete, name="delete"),
]
