"""The audit log: who changed what, when, with the values before and after. Append-only.

Entries are written through `audit.log.record()`. The model refuses updates and deletes, and the
database refuses them too (triggers in migration 0002), so no screen, admin page or API can edit
history; and each entry carries a hash chained to the previous one, so a change made with direct
access to the database shows (`manage.py verify_audit`). Values are scrubbed of credentials.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AppendOnly(Exception):
    pass


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs):  # type: ignore[override]
        raise AppendOnly("Audit entries are never edited.")

    def delete(self):  # type: ignore[override]
        raise AppendOnly("Audit entries are never deleted.")


class AuditEntry(models.Model):
    # No database constraint and no cascade: deleting a user or team must not touch history
    # (the append-only triggers would refuse it); the names stay readable in actor_name.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False
    )
    actor_name = models.CharField(max_length=150)
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False
    )
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=300)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # SHA-256 of this entry's content and the previous entry's hash (audit/log.py): changing,
    # removing or inserting an entry anywhere breaks the chain from there on (manage.py verify_audit).
    chain_hash = models.CharField(max_length=64, editable=False)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_name} {self.action} {self.object_id}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise AppendOnly("Audit entries are never edited.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnly("Audit entries are never deleted.")
