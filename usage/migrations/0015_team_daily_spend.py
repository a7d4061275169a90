# Team roll-ups (TeamDailySpend: DailySpend without user and API key) for the spend page and the team
# budgets: the table, then the triggers on DailySpend that keep it (usage/team_rollups.py), then its
# rows summed from the existing DailySpend rows.

import django.db.models.deletion
import django.db.models.functions.comparison
from decimal import Decimal
from django.db import migrations, models

from usage import team_rollups


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0005_stored_response_retention'),
        ('usage', '0014_dailyspend_kind'),
    ]

    operations = [
        migrations.CreateModel(
            name='TeamDailySpend',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateField()),
                ('provider_id', models.CharField(max_length=64)),
                ('model', models.CharField(max_length=200)),
                ('kind', models.CharField(choices=[('generation', 'Generation'), ('embeddings', 'Embeddings')], default='generation', max_length=12)),
                ('runs', models.PositiveIntegerField(default=0)),
                ('input_tokens', models.PositiveBigIntegerField(default=0)),
                ('output_tokens', models.PositiveBigIntegerField(default=0)),
                ('cost_usd', models.DecimalField(decimal_places=12, default=Decimal('0'), max_digits=24)),
                ('team', models.ForeignKey(null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='accounts.team')),
            ],
            options={
                'indexes': [models.Index(fields=['team', 'day', 'kind', 'provider_id', 'model', 'cost_usd', 'runs', 'input_tokens', 'output_tokens'], name='teamdailyspend_covering')],
                'constraints': [models.UniqueConstraint(models.F('day'), django.db.models.functions.comparison.Coalesce('team', models.Value(0)), models.F('provider_id'), models.F('model'), models.F('kind'), name='teamdailyspend_one_row_per_key')],
            },
        ),
        migrations.RunPython(team_rollups.install, team_rollups.uninstall),
    ]
