from django.apps import AppConfig


class CiRunnersConfig(AppConfig):
    name = "ci_runners"
    verbose_name = "Compatibility runs"
