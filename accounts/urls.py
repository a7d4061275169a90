from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views

app_name = "accounts"
urlpatterns = [
    path("setup/", views.first_admin, name="first-admin"),
    path("accounts/login/", auth_views.LoginView.as_view(template_name="accounts/login.html"), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", views.password_change, name="password-change"),
    path("invite/<str:token>/", views.join, name="join"),
    path("teams/switch/", views.switch_team, name="switch-team"),
    path("teams/settings/", views.team_settings, name="team-settings"),
    path("settings/team/", views.team_page, name="team"),
    path("settings/team/invite/", views.invite, name="invite"),
    path("settings/team/accounts/", views.new_account, name="new-account"),
    path("settings/team/members/<int:membership_id>/role/", views.change_role, name="change-role"),
    path("settings/team/members/<int:membership_id>/remove/", views.remove_member, name="remove-member"),
    path(
        "settings/team/invitations/<int:invitation_id>/revoke/",
        views.revoke_invitation,
        name="revoke-invitation",
    ),
    path("settings/teams/", views.teams, name="teams"),
    path("settings/teams/<int:team_id>/rename/", views.rename_team, name="rename-team"),
]
