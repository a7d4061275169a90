"""Each audit entry carries a hash chained to the previous entry's; existing entries get theirs here,
in the order they were written (the append-only guard is lifted for this one migration)."""

import importlib

import django.utils.timezone
from django.db import migrations, models


def chain_existing_entries(apps, schema_editor):
    from audit.log import GENESIS, chain_hash

    AuditEntry = apps.get_model("audit", "AuditEntry")
    guarded = schema_editor.connection.vendor in ("sqlite", "postgresql")
    if guarded:
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT locked FROM audit_guard")
            locked = cursor.fetchone()[0]
        schema_editor.execute("UPDATE audit_guard SET locked = 0")
    previous = GENESIS
    for entry in AuditEntry.objects.order_by("pk").iterator():
        entry.chain_hash = chain_hash(previous, entry)
        AuditEntry.objects.filter(pk=entry.pk).update(chain_hash=entry.chain_hash)
        previous = entry.chain_hash
    if guarded:
        schema_editor.execute("UPDATE audit_guard SET locked = %s", [locked])


def restore_sqlite_triggers(apps, schema_editor):
    """SQLite rebuilds a table to add or alter a column, and its triggers go with the old table."""
    if schema_editor.connection.vendor == "sqlite":
        append_only = importlib.import_module("audit.migrations.0002_append_only")
        schema_editor.execute("DROP TRIGGER IF EXISTS audit_entry_no_update")
        schema_editor.execute("DROP TRIGGER IF EXISTS audit_entry_no_delete")
        for statement in append_only.SQLITE:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only")]

    operations = [
        migrations.AlterField(
            model_name="auditentry",
            name="created_at",
            field=models.DateTimeField(db_index=True, default=django.utils.timezone.now),
        ),
        migrations.AddField(
            model_name="auditentry",
            name="chain_hash",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(restore_sqlite_triggers, migrations.RunPython.noop),
        migrations.RunPython(chain_existing_entries, migrations.RunPython.noop),
    ]
