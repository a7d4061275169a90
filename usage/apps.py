from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import pre_delete


class UsageConfig(AppConfig):
    name = "usage"
    verbose_name = "Usage"

    def ready(self) -> None:
        from usage import rollups

        # Deleting a team, user or API key keeps its spend in the roll-ups (without it).
        for model in ("accounts.Team", settings.AUTH_USER_MODEL, "gateway.ApiKey"):
            pre_delete.connect(rollups.fold_deleted_owner, sender=model, dispatch_uid=f"fold-rollups-{model}")
