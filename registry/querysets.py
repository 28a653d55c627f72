"""Reusable project filters."""

from django.db import models
from django.db.models import Prefetch


class ProjectQuerySet(models.QuerySet):
    def active(self) -> "ProjectQuerySet":
        return self.filter(status="active")

    def with_latest_snapshot(self) -> "ProjectQuerySet":
        """Attach `latest_snapshots` (a list of at most one) without a query per project."""
        from registry.models import RepoSnapshot

        latest_ids = (
            RepoSnapshot.objects.filter(project=models.OuterRef("project_id"))
            .order_by("-taken_at")
            .values("id")[:1]
        )
        return self.prefetch_related(
            Prefetch(
                "snapshots",
                queryset=RepoSnapshot.objects.filter(id=models.Subquery(latest_ids)),
                to_attr="latest_snapshots",
            )
        )
