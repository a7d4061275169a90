from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views

app_name = "accounts"
urlpatterns = [
    path("setup/", views.first_admin, name="first-admin"),
    path("accounts/login/", auth_views.LoginView.as_view(template_name="accounts/login.html"), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("teams/switch/", views.switch_team, name="switch-team"),
    path("teams/settings/", views.team_settings, name="team-settings"),
]
