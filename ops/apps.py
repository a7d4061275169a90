from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from django.conf import settings

        from gateway import response_store
        from ops import maintenance, retention

        if settings.LLMHUB_RETENTION_DAYS:
            maintenance.register("retention", settings.LLMHUB_RETENTION_INTERVAL, retention.apply_configured)
        # Each team sets its own period for stored API responses: this job always runs.
        maintenance.register("stored-responses", settings.LLMHUB_RETENTION_INTERVAL, response_store.expire)
