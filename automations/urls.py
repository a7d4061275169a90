from django.urls import path

from automations import views

app_name = "automations"
urlpatterns = [
    path("", views.automation_list, name="list"),
    path("new/", views.automation_edit, name="new"),
    path("<int:automation_id>/", views.automation_detail, name="detail"),
    path("<int:automation_id>/edit/", views.automation_edit, name="edit"),
    path("<int:automation_id>/delete/", views.automation_delete, name="delete"),
    path("<int:automation_id>/model/", views.change_model, name="change-model"),
    path("<int:automation_id>/model/switch/", views.switch_model, name="switch-model"),
]
