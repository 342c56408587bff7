from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "generation"
    verbose_name = "Images and models"

    def ready(self):
        from generation.answers import hosted  # noqa: F401  (connects its job_settled receiver)
        from generation.lifecycle import webhooks  # noqa: F401  (connects its job_finished receiver)
