from django.urls import path

from usage import views

app_name = "usage"
urlpatterns = [
    path("playground/", views.playground, name="playground"),
    path("runs/<uuid:run_id>/", views.run_detail, name="run"),
]
