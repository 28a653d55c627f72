"""`manage.py sync_github [--project SLUG]`: sync repository health from GitHub now."""

from collections import Counter

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from registry.models import Project
from registry.services import GitHubSyncResult, project_sync_github

SUMMARY = [
    (GitHubSyncResult.SYNCED, "synced"),
    (GitHubSyncResult.UNCHANGED, "unchanged (304)"),
    (GitHubSyncResult.NOT_FOUND, "not found"),
    (GitHubSyncResult.PRIVATE, "private"),
    (GitHubSyncResult.RENAMED, "renamed"),
    (GitHubSyncResult.ERROR, "errors"),
]


class Command(BaseCommand):
    help = "Read repository health from GitHub for every active project, or for one."

    def add_arguments(self, parser):
        parser.add_argument("--project", metavar="SLUG", help="Sync only this project.")

    def handle(self, *args, **options):
        slug = options.get("project")
        if slug:
            project = Project.objects.filter(slug=slug).first()
            if project is None:
                raise CommandError(f"No project with slug {slug!r}.")
            if not project.repo_owner:
                raise CommandError(f"Project {slug!r} has no GitHub repository to sync.")
            projects = [project]
        else:
            projects = list(Project.objects.active().exclude(repo_owner="").order_by("slug"))

        counts: Counter[GitHubSyncResult] = Counter()
        problems: list[str] = []
        progress = tqdm(
            projects,
            desc="GitHub sync",
            unit="project",
            file=self.stderr._out,
            disable=not projects,
        )
        try:
            for project in progress:
                progress.set_postfix_str(project.slug)
                outcome = project_sync_github(project=project)
                if outcome.unreachable:
                    raise CommandError(
                        f"Cannot reach the GitHub API at {settings.GITHUB_API_URL}: "
                        f"{outcome.detail} (recorded on {project.slug!r}; stopped)."
                    )
                if outcome.result == GitHubSyncResult.RATE_LIMITED:
                    left = len(projects) - sum(counts.values())
                    raise CommandError(
                        f"{outcome.detail} {left} project(s) not synced; run again after the reset."
                    )
                counts[outcome.result] += 1
                if outcome.result not in {GitHubSyncResult.SYNCED, GitHubSyncResult.UNCHANGED}:
                    problems.append(f"  {project.slug}: {outcome.result.value}: {outcome.detail}")
        finally:
            progress.close()

        for line in problems:
            self.stdout.write(line)
        summary = ", ".join(f"{counts[result]} {label}" for result, label in SUMMARY)
        self.stdout.write(f"GitHub sync of {len(projects)} project(s): {summary}.")
        if counts[GitHubSyncResult.ERROR]:
            raise CommandError(
                f"{counts[GitHubSyncResult.ERROR]} project(s) could not be synced (see above)."
            )
