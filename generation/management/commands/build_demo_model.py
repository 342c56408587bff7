from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from generation.kinds.base import ModelType
from generation.models import LibraryModel
from generation.runtime.demo_model import build_demo_controlnet, build_demo_model

# demo ControlNets (random weights) under the hosted service's names, so ControlNet examples run as written
DEMO_CONTROLNETS = {"canny": 1, "tile": 2}  # id -> the seed of its weights


class Command(BaseCommand):
    help = (
        "Build the tiny random-weight demo SDXL (no download) unless it already exists; for the deployment's "
        "demo model, also demo ControlNets of it, added to the library as 'canny' and 'tile'."
    )

    def add_arguments(self, parser):
        parser.add_argument("--path", default=str(settings.DEMO_MODEL_PATH))
        parser.add_argument("--force", action="store_true")

    def handle(self, path, force, **options):
        path = Path(path)
        built = force or not (path / "model_index.json").exists()
        if built:
            build_demo_model(path)
        for public_id, seed in DEMO_CONTROLNETS.items():
            if path != Path(settings.SDXL_MODEL) or LibraryModel.objects.filter(public_id=public_id).exists():
                continue
            controlnet = build_demo_controlnet(path, path.parent / f"demo-controlnet-{public_id}", seed=seed)
            call_command(
                "addmodel",
                str(controlnet),
                "--id",
                public_id,
                "--kind",
                ModelType.CONTROLNET,
                "--name",
                f"{public_id} (demo, random weights)",
                stdout=self.stdout,
            )
        self.stdout.write(f"Built demo model at {path}" if built else f"Demo model already at {path}")
