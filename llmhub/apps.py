from django.apps import AppConfig


class LLMHubConfig(AppConfig):
    name = "llmhub"
    verbose_name = "LLMHub"

    def ready(self) -> None:
        from llmhub import checks

        checks.warn_about_file_modes()  # at every start: a server runs no system checks
