"""Reusable project filters."""

from django.db import models
from django.db.models import Prefetch


class ProjectQuerySet(models.QuerySet):
    def active(self) -> "ProjectQuerySet":
        return self.filter(status="active")

    def listed(self, *, status: str = "", kind: str = "") -> "ProjectQuerySet":
        """As the public lists filter them: `status` "" (active), "all" or one status; `kind`
        one kind, anything else every kind."""
        from registry.models import Project

        projects = self
        if status != "all":
            projects = projects.filter(
                status=status if status in Project.Status.values else Project.Status.ACTIVE
            )
        if kind in Project.Kind.values:
            projects = projects.filter(kind=kind)
        return projects

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
