from django.core.management.base import BaseCommand

from accounts.keys import create_api_key
from accounts.models import User


class Command(BaseCommand):
    help = "Create an API key for EMAIL (creating the user if needed); the key is printed alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--name", default="cli")
        parser.add_argument("--password", default=None, help="set this password when the user is created")

    def handle(self, email, name, password, **options):
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            user = User.objects.create_user(email=email, password=password)
            self.stderr.write(f"Created user {user.email}")
        api_key, raw_key = create_api_key(user, name=name)
        self.stderr.write(f"Created API key {api_key.prefix}… for {user.email}")
        self.stdout.write(raw_key)
