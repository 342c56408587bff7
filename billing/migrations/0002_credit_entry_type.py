"""The ledger's `kind` becomes `entry_type` (kind is the job's word)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [
        migrations.RemoveConstraint(model_name="creditentry", name="one_entry_per_job_and_kind"),
        migrations.RemoveConstraint(model_name="creditentry", name="one_settlement_per_job"),
        migrations.RenameField(model_name="creditentry", old_name="kind", new_name="entry_type"),
        migrations.AddConstraint(
            model_name="creditentry",
            constraint=models.UniqueConstraint(
                condition=models.Q(("job__isnull", False)), fields=("job", "entry_type"), name="one_entry_per_job_and_type"
            ),
        ),
        migrations.AddConstraint(
            model_name="creditentry",
            constraint=models.UniqueConstraint(
                condition=models.Q(("entry_type__in", ["charge", "refund"])), fields=("job",), name="one_settlement_per_job"
            ),
        ),
    ]
