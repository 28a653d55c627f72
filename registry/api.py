"""Public REST API of the registry (placeholder; filled below)."""

extra_urlpatterns: list = []


def register(router) -> None:
    return None
