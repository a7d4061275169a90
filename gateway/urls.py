from django.urls import path

from gateway import views

app_name = "gateway"
urlpatterns = [
    path("api-keys/", views.keys_page, name="keys"),
    path("api-keys/<int:key_id>/revoke/", views.revoke, name="revoke"),
    path("api-keys/<int:key_id>/limits/", views.key_limits, name="key-limits"),
    path("api-keys/aliases/", views.add_alias, name="add-alias"),
    path("api-keys/aliases/<int:alias_id>/delete/", views.delete_alias, name="delete-alias"),
]
