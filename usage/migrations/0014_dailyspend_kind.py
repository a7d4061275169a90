# The roll-ups get the kind of call (generation or embeddings) in their key, for the spend page's
# filter: the existing rows are rebuilt from the usage rows (which carry it since 0013) between the old
# unique key and the new one.

import django.db.models.functions.comparison
from django.conf import settings
from django.db import migrations, models


def rebuild_rollups(apps, schema_editor):
    from usage import rollups

    rollups.rebuild(apps.get_model("usage", "UsageRecord"), apps.get_model("usage", "DailySpend"))
    if schema_editor.connection.vendor == "postgresql":
        # The new rows' deferred foreign-key checks run now: PostgreSQL will not build an index on
        # a table with checks pending.
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
        ('gateway', '0001_initial'),
        ('usage', '0013_call_kind_on_runs_and_usage_rows'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='dailyspend',
            name='dailyspend_one_row_per_key',
        ),
        migrations.RemoveIndex(
            model_name='dailyspend',
            name='dailyspend_covering',
        ),
        migrations.AddField(
            model_name='dailyspend',
            name='kind',
            field=models.CharField(choices=[('generation', 'Generation'), ('embeddings', 'Embeddings')], default='generation', max_length=12),
        ),
        migrations.RunPython(rebuild_rollups, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name='dailyspend',
            index=models.Index(fields=['team', 'day', 'kind', 'provider_id', 'model', 'cost_usd', 'runs', 'input_tokens', 'output_tokens'], name='dailyspend_covering_by_kind'),
        ),
        migrations.AddConstraint(
            model_name='dailyspend',
            constraint=models.UniqueConstraint(models.F('day'), django.db.models.functions.comparison.Coalesce('team', models.Value(0)), django.db.models.functions.comparison.Coalesce('user', models.Value(0)), django.db.models.functions.comparison.Coalesce('api_key', models.Value(0)), models.F('provider_id'), models.F('model'), models.F('kind'), name='dailyspend_one_call_kind_per_key'),
        ),
    ]
