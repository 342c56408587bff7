from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from billing.models import Plan
from generation.inputs import library
from generation.kinds.sampling import PRESETS, with_preset
from generation.models import LibraryModel


class Command(BaseCommand):
    help = (
        "Add a checkpoint, LoRA, embedding, VAE, ControlNet, IP-Adapter or segmentation model to the model library "
        "(its files are checked first), with a few-step model's own sampling (--preset, then any override)."
    )

    def add_arguments(self, parser):
        parser.add_argument("source", help="a diffusers folder, a .safetensors file, or storage:<name>")
        parser.add_argument("--id", required=True, help="the id clients send")
        parser.add_argument("--kind", required=True, choices=LibraryModel.ModelType.values)
        parser.add_argument("--name", default="")
        parser.add_argument("--description", default="")
        parser.add_argument("--plans", default="", help="comma-separated plan slugs that may use it (default: all)")
        parser.add_argument("--private", action="store_true", help="not listed by model_list")
        parser.add_argument("--default", action="store_true", help="the checkpoint of requests that name none")
        parser.add_argument("--credit-multiplier", default="1")
        parser.add_argument("--license", default="", help='its licence, e.g. "SAI non-commercial"')
        sampling = parser.add_argument_group("its own sampling (a checkpoint's or LoRA's; requests may ask otherwise)")
        sampling.add_argument("--preset", choices=list(PRESETS), help="a few-step family's published settings")
        sampling.add_argument("--scheduler", help="a diffusers scheduler class, e.g. TCDScheduler")
        sampling.add_argument("--timestep-spacing", choices=["leading", "linspace", "trailing"])
        sampling.add_argument("--steps", type=int, help="the default steps")
        sampling.add_argument("--max-steps", type=int, help="the most steps a request gets")
        sampling.add_argument("--guidance", type=float, help="the default guidance (<= 1: no negative-prompt pass)")
        sampling.add_argument("--guidance-range", help="LOW,HIGH: what requests may ask, e.g. 0,1")
        sampling.add_argument("--eta", type=float, help="TCD's gamma / DDIM's eta")

    @transaction.atomic
    def handle(self, source, **options):
        entry = LibraryModel.objects.filter(public_id=options["id"]).first() or LibraryModel(public_id=options["id"])
        entry.model_type, entry.source = options["kind"], source
        entry.name, entry.description = options["name"] or options["id"], options["description"]
        entry.is_public, entry.is_default = not options["private"], options["default"]
        entry.credit_multiplier, entry.license = options["credit_multiplier"], options["license"]
        entry.sampling = self.sampling(options)
        try:
            entry.full_clean(exclude=["content_hash"], validate_unique=False)
            entry.content_hash, entry.size_bytes = library.check(source, entry.model_type)
        except (ValidationError, library.InvalidModelFile) as exc:
            raise CommandError(f"Refused: {exc}") from exc
        slugs = [slug.strip() for slug in options["plans"].split(",") if slug.strip()]
        plans = list(Plan.objects.filter(slug__in=slugs))
        if len(plans) != len(slugs):
            raise CommandError(f"Unknown plan in {slugs}")
        if entry.is_default:
            library.make_default(entry)
        entry.save()
        entry.plans.set(plans)
        self.stdout.write(f"Added {entry.public_id} ({entry.model_type}, {entry.size_bytes / 2**20:.1f} MiB)")

    def sampling(self, options) -> dict:
        low = high = None
        if options["guidance_range"]:
            try:
                low, high = (float(value) for value in options["guidance_range"].split(","))
            except ValueError as exc:
                raise CommandError("--guidance-range is LOW,HIGH, e.g. 0,1") from exc
        given = {
            "scheduler": options["scheduler"],
            "timestep_spacing": options["timestep_spacing"],
            "steps": options["steps"],
            "max_steps": options["max_steps"],
            "guidance": options["guidance"],
            "min_guidance": low,
            "max_guidance": high,
            "eta": options["eta"],
        }
        try:
            return with_preset(options["preset"], given)
        except ValueError as exc:
            raise CommandError(f"Refused: {exc}") from exc
