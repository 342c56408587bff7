from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Users and API keys"  # allauth's own app is titled "Accounts"

    def ready(self):
        from accounts import keys  # noqa: F401  (connects the receivers that forget cached keys)
