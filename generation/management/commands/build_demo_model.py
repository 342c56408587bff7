from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from generation.runtime.demo_model import build_demo_model


class Command(BaseCommand):
    help = "Build the tiny random-weight demo SDXL (no download) unless it already exists."

    def add_arguments(self, parser):
        parser.add_argument("--path", default=str(settings.DEMO_MODEL_PATH))
        parser.add_argument("--force", action="store_true")

    def handle(self, path, force, **options):
        path = Path(path)
        if (path / "model_index.json").exists() and not force:
            self.stdout.write(f"Demo model already at {path}")
            return
        build_demo_model(path)
        self.stdout.write(f"Built demo model at {path}")
