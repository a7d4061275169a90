"""Automations: saved tasks a team runs again and again."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from automations import prompts
from providers.base import Message


class Automation(models.Model):
    """A system prompt and a user prompt template with named inputs ("Summarize {text}")."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="automations")
    name = models.CharField(max_length=100)
    system_prompt = models.TextField(blank=True)
    prompt_template = models.TextField(help_text="Named inputs in braces: {topic}")
    model = models.CharField(
        max_length=300, blank=True, help_text='"provider/model"; empty: the team default'
    )
    max_tokens = models.PositiveIntegerField(default=1024)
    temperature = models.DecimalField(max_digits=3, decimal_places=2, null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="unique_automation_name_per_team")
        ]

    def __str__(self) -> str:
        return self.name

    def input_names(self) -> list[str]:
        """The named inputs of the template, in order of first use."""
        return prompts.input_names(self.prompt_template)

    def messages(self, inputs: dict[str, str]) -> tuple[Message, ...]:
        prompt = prompts.fill(self.prompt_template, inputs)
        system = (Message("system", self.system_prompt),) if self.system_prompt else ()
        return (*system, Message("user", prompt))
