from django.conf import settings
from django.core.management.base import BaseCommand

from generation import storage


class Command(BaseCommand):
    help = "Delete the images of jobs finished more than OUTPUT_RETENTION_DAYS days ago; mark the jobs expired."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=settings.OUTPUT_RETENTION_DAYS)

    def handle(self, days, **options):
        if days <= 0:
            self.stdout.write("Retention is off (keeping outputs forever).")
            return
        self.stdout.write(f"Expired {storage.expire_old_outputs(days)} job(s) older than {days} days.")
