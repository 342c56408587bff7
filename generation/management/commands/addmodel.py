from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from billing.models import Plan
from generation.inputs import library
from generation.models import LibraryModel


class Command(BaseCommand):
    help = "Add a checkpoint, LoRA, embedding or VAE to the model library (its files are checked first)."

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

    @transaction.atomic
    def handle(self, source, **options):
        entry = LibraryModel.objects.filter(public_id=options["id"]).first() or LibraryModel(public_id=options["id"])
        entry.model_type, entry.source = options["kind"], source
        entry.name, entry.description = options["name"] or options["id"], options["description"]
        entry.is_public, entry.is_default = not options["private"], options["default"]
        entry.credit_multiplier = options["credit_multiplier"]
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
