from django.conf import settings
from django.core.management.base import BaseCommand

from generation.inputs import storage


class Command(BaseCommand):
    help = (
        "Delete the images of jobs finished more than OUTPUT_RETENTION_DAYS days ago (marking the jobs "
        "expired), and the uploads older than UPLOAD_RETENTION_DAYS."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=settings.OUTPUT_RETENTION_DAYS)

    def handle(self, days, **options):
        uploads = storage.expire_uploads(settings.UPLOAD_RETENTION_DAYS)
        self.stdout.write(f"Deleted {uploads} upload(s) older than {settings.UPLOAD_RETENTION_DAYS} days.")
        if days <= 0:
            self.stdout.write("Retention is off (keeping outputs forever).")
            return
        self.stdout.write(f"Expired {storage.expire_old_outputs(days)} job(s) older than {days} days.")
