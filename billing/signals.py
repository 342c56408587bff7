from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver

from billing import credits


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def give_new_users_the_default_plan(sender, instance, created, raw=False, **kwargs):
    """Every new user starts on the default plan with its first month's credits."""
    if created and not raw:
        credits.account_for(instance)
