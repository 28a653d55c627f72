"""`compat_run_id_ref` (a bare id) becomes `compat_run`, a foreign key to ci_runners.CompatRun.

Ids of runs that still exist are kept; an id whose run is gone becomes NULL (the foreign key
cannot point at it, and `compat_run_record` ignores a run the row no longer names).
"""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Exists, F, OuterRef

MODELS = ("submission", "periodicreview")


def copy_ids_to_foreign_key(apps, schema_editor):
    CompatRun = apps.get_model("ci_runners", "CompatRun")
    for name in MODELS:
        model = apps.get_model("reviews", name)
        model.objects.filter(
            Exists(CompatRun.objects.filter(pk=OuterRef("compat_run_id_ref")))
        ).update(compat_run=F("compat_run_id_ref"))


def copy_foreign_key_to_ids(apps, schema_editor):
    for name in MODELS:
        model = apps.get_model("reviews", name)
        model.objects.update(compat_run_id_ref=F("compat_run"))


def compat_run_field():
    return models.ForeignKey(
        blank=True,
        help_text="The compatibility run asked for criteria 1 and 8.",
        null=True,
        on_delete=django.db.models.deletion.SET_NULL,
        related_name="+",
        to="ci_runners.compatrun",
    )


class Migration(migrations.Migration):
    dependencies = [
        ("ci_runners", "0001_initial"),
        ("reviews", "0002_groups"),
    ]

    operations = [
        migrations.AddField(
            model_name="submission", name="compat_run", field=compat_run_field()
        ),
        migrations.AddField(
            model_name="periodicreview", name="compat_run", field=compat_run_field()
        ),
        migrations.RunPython(copy_ids_to_foreign_key, copy_foreign_key_to_ids),
        migrations.RemoveField(model_name="submission", name="compat_run_id_ref"),
        migrations.RemoveField(model_name="periodicreview", name="compat_run_id_ref"),
    ]
