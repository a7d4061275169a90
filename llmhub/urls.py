from django.contrib import admin
from django.urls import path

from providers import views as provider_views

urlpatterns = [
    path("", provider_views.home, name="home"),
    path("admin/", admin.site.urls),
]
