"""A library model's `kind` becomes `model_type` (kind is the job's word), and a super_resolution job's
stored `model_id` parameter becomes `upscaler` (model_id is a checkpoint elsewhere; the wire keeps it)."""

from django.db import migrations, models


def rename_parameter(apps, old: str, new: str):
    Job = apps.get_model("generation", "Job")
    for job in Job.objects.filter(kind="super_resolution").iterator():
        if old in job.params:
            job.params[new] = job.params.pop(old)
            job.save(update_fields=["params"])


def forwards(apps, schema_editor):
    rename_parameter(apps, "model_id", "upscaler")


def backwards(apps, schema_editor):
    rename_parameter(apps, "upscaler", "model_id")


class Migration(migrations.Migration):
    dependencies = [("generation", "0011_job_preview_name")]

    operations = [
        migrations.RemoveConstraint(model_name="librarymodel", name="only_checkpoints_are_default"),
        migrations.RenameField(model_name="librarymodel", old_name="kind", new_name="model_type"),
        migrations.AlterModelOptions(name="librarymodel", options={"ordering": ["model_type", "public_id"]}),
        migrations.AddConstraint(
            model_name="librarymodel",
            constraint=models.CheckConstraint(
                condition=models.Q(("is_default", False), ("model_type", "checkpoint"), _connector="OR"),
                name="only_checkpoints_are_default",
            ),
        ),
        migrations.RunPython(forwards, backwards),
    ]
