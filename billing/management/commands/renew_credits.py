from django.core.management.base import BaseCommand

from billing import credits


class Command(BaseCommand):
    help = "Start a new month for accounts without a subscription whose month is over (expire, then grant)."

    def handle(self, **options):
        self.stdout.write(f"Renewed {credits.renew_due()} account(s).")
