"""The database itself refuses to change or remove an audit entry, whoever asks.

The triggers consult `audit_guard`, a one-row table that is not a Django model (so `flush` leaves
it alone). It is locked in every real database; only the test suite unlocks it, because tests wipe
tables between cases.
"""

from django.db import migrations

GUARD = [
    "CREATE TABLE audit_guard (locked INTEGER NOT NULL)",
    "INSERT INTO audit_guard (locked) VALUES (1)",
]
SQLITE = [
    """CREATE TRIGGER audit_entry_no_update BEFORE UPDATE ON audit_auditentry
       WHEN (SELECT locked FROM audit_guard) = 1
       BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END""",
    """CREATE TRIGGER audit_entry_no_delete BEFORE DELETE ON audit_auditentry
       WHEN (SELECT locked FROM audit_guard) = 1
       BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END""",
]
POSTGRES = [
    """CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger AS $$
       BEGIN
         IF (SELECT locked FROM audit_guard) = 1 THEN
           RAISE EXCEPTION 'audit entries are append-only';
         END IF;
         RETURN COALESCE(NEW, OLD);
       END; $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON audit_auditentry
       FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()""",
    """CREATE TRIGGER audit_entry_no_truncate BEFORE TRUNCATE ON audit_auditentry
       FOR EACH STATEMENT EXECUTE FUNCTION audit_entry_append_only()""",
]


def create(apps, schema_editor):
    statements = {"sqlite": SQLITE, "postgresql": POSTGRES}.get(schema_editor.connection.vendor)
    if statements:
        for statement in GUARD + statements:
            schema_editor.execute(statement)


def drop(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        schema_editor.execute("DROP TRIGGER IF EXISTS audit_entry_no_update")
        schema_editor.execute("DROP TRIGGER IF EXISTS audit_entry_no_delete")
    elif vendor == "postgresql":
        schema_editor.execute("DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_auditentry")
        schema_editor.execute("DROP TRIGGER IF EXISTS audit_entry_no_truncate ON audit_auditentry")
    if vendor in ("sqlite", "postgresql"):
        schema_editor.execute("DROP TABLE IF EXISTS audit_guard")


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]
