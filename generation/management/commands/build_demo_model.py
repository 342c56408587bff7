from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from generation.models import LibraryModel
from generation.runtime.demo_model import build_demo_controlnet, build_demo_model

DEMO_CONTROLNET_ID = "canny"  # the hosted service's name, so its ControlNet examples run as written


class Command(BaseCommand):
    help = (
        "Build the tiny random-weight demo SDXL (no download) unless it already exists; for the deployment's "
        "demo model, also a demo ControlNet of it, added to the library as 'canny'."
    )

    def add_arguments(self, parser):
        parser.add_argument("--path", default=str(settings.DEMO_MODEL_PATH))
        parser.add_argument("--force", action="store_true")

    def handle(self, path, force, **options):
        path = Path(path)
        built = force or not (path / "model_index.json").exists()
        if built:
            build_demo_model(path)
        if path == Path(settings.SDXL_MODEL) and not LibraryModel.objects.filter(public_id=DEMO_CONTROLNET_ID).exists():
            controlnet = build_demo_controlnet(path, path.parent / "demo-controlnet-canny")
            call_command(
                "addmodel",
                str(controlnet),
                "--id",
                DEMO_CONTROLNET_ID,
                "--kind",
                "controlnet",
                "--name",
                "canny (demo, random weights)",
                stdout=self.stdout,
            )
        self.stdout.write(f"Built demo model at {path}" if built else f"Demo model already at {path}")
