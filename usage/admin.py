from django.contrib import admin
from django.http import HttpRequest

from usage.models import UsageRecord


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    """Read-only: usage rows are what was charged."""

    list_display = [
        "created_at",
        "provider_id",
        "model",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "source",
    ]
    list_filter = ["provider_id", "source", "kind"]
    search_fields = ["run_id", "request_id"]  # a client's or a log line's x-request-id finds its row

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
