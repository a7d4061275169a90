from django.urls import path

from usage import views

app_name = "usage"
urlpatterns = [
    path("playground/", views.playground, name="playground"),
    path("runs/<uuid:run_id>/", views.run_detail, name="run"),
    path("runs/<uuid:run_id>/again/", views.retry, name="retry"),
    path("budget/", views.team_budget, name="team-budget"),
    path("fallback/", views.team_fallback, name="team-fallback"),
    path("automations/<int:automation_id>/fallback/", views.automation_fallback, name="automation-fallback"),
    path("providers/<slug:provider_id>/budget/", views.provider_budget, name="provider-budget"),
    path("spend/", views.spend_page, name="spend"),
    path("spend/usage.csv", views.spend_csv, name="spend-csv"),
]
