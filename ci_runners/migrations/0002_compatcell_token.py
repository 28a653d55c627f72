"""Give every compat cell a random dispatch token (part of its broker keys).

Three steps so that existing rows each get their own uuid: an AddField with a callable
default would give every existing row the same value.
"""

import uuid

from django.db import migrations, models


def fill_tokens(apps, schema_editor):
    CompatCell = apps.get_model("ci_runners", "CompatCell")
    cells = CompatCell.objects.filter(token__isnull=True).only("pk")
    batch = []
    for cell in cells.iterator(chunk_size=2000):
        cell.token = uuid.uuid4()
        batch.append(cell)
        if len(batch) >= 2000:
            CompatCell.objects.bulk_update(batch, ["token"])
            batch.clear()
    if batch:
        CompatCell.objects.bulk_update(batch, ["token"])


class Migration(migrations.Migration):
    dependencies = [
        ("ci_runners", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="compatcell",
            name="token",
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.RunPython(fill_tokens, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="compatcell",
            name="token",
            field=models.UUIDField(default=uuid.uuid4, editable=False),
        ),
    ]
