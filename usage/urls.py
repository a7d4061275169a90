from django.urls import path

from usage import budget_views, log_views, spend_views, views

app_name = "usage"
urlpatterns = [
    path("playground/", views.playground, name="playground"),
    path("runs/", log_views.run_log, name="runs"),
    path("runs/<uuid:run_id>/", views.run_detail, name="run"),
    path("runs/<uuid:run_id>/record/", log_views.run_record, name="run-detail"),
    path("runs/<uuid:run_id>/again/", views.retry, name="retry"),
    path("budgets/", budget_views.budget_list, name="budgets"),
    path("budgets/dismiss/", budget_views.dismiss_alert, name="dismiss-alert"),
    path("budget/", budget_views.team_budget, name="team-budget"),
    path("fallback/", views.team_fallback, name="team-fallback"),
    path("automations/<int:automation_id>/fallback/", views.automation_fallback, name="automation-fallback"),
    path("providers/<slug:provider_id>/budget/", budget_views.provider_budget, name="provider-budget"),
    path("settings/api-keys/<int:key_id>/budget/", budget_views.key_budget, name="key-budget"),
    path("spend/", spend_views.spend_page, name="spend"),
    path("spend/usage.csv", spend_views.spend_csv, name="spend-csv"),
]
