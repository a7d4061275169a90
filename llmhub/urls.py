from django.contrib import admin
from django.urls import include, path

from providers import views as provider_views

urlpatterns = [
    path("", provider_views.home, name="home"),
    path("", include("accounts.urls")),
    path("providers/", include("providers.urls")),
    path("audit/", include("audit.urls")),
    path("", include("usage.urls")),
    path("automations/", include("automations.urls")),
    path("admin/", admin.site.urls),
]
