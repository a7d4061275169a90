from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class ProvidersConfig(AppConfig):
    name = "providers"
    verbose_name = "Providers"

    def ready(self) -> None:
        from providers import configuration

        # Every process's snapshot of the configuration learns of a change at its next lookup.
        for model in configuration.WATCHED:
            for signal in (post_save, post_delete):
                signal.connect(configuration.changed, sender=model, dispatch_uid=f"configuration-{model}")
