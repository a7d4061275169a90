# The roll-ups' unique key treats "no team / user / API key" as one value; the rows the old key let
# PostgreSQL duplicate (and over-count) are rebuilt from the usage rows before the new key is added.

import django.db.models.functions.comparison
from django.conf import settings
from django.db import migrations, models


def rebuild_rollups(apps, schema_editor):
    from usage import rollups

    # The key as it was then: the kind of call joined it in 0014.
    key = ("day", "team_id", "user_id", "api_key_id", "provider_id", "model")
    rollups.rebuild(apps.get_model("usage", "UsageRecord"), apps.get_model("usage", "DailySpend"), key)
    if schema_editor.connection.vendor == "postgresql":
        # The new rows' deferred foreign-key checks run now: PostgreSQL will not build an index on
        # a table with checks pending.
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
        ('gateway', '0001_initial'),
        ('usage', '0007_run_team_active_reservation'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='dailyspend',
            name='one_rollup_per_day_and_key',
        ),
        migrations.RunPython(rebuild_rollups, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='dailyspend',
            constraint=models.UniqueConstraint(models.F('day'), django.db.models.functions.comparison.Coalesce('team', models.Value(0)), django.db.models.functions.comparison.Coalesce('user', models.Value(0)), django.db.models.functions.comparison.Coalesce('api_key', models.Value(0)), models.F('provider_id'), models.F('model'), name='dailyspend_one_row_per_key'),
        ),
    ]
