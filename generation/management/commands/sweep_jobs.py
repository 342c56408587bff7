from django.core.management.base import BaseCommand

from generation.lifecycle import recovery


class Command(BaseCommand):
    help = "Re-queue or fail jobs nobody will finish (their worker died, or Redis lost them). Workers do this too."

    def handle(self, **options):
        self.stdout.write(f"Swept: {recovery.sweep()}")
