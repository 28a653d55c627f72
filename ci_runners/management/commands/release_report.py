"""Print the release readiness report of a PyTorch version: JSON (`--json`, the API's and the
page's data) or a short human summary. Exits 0 for a version with no target or run yet (the
report then has empty sections)."""

import json

from django.core.management.base import BaseCommand, CommandError

from ci_runners import release_reports


class Command(BaseCommand):
    help = "Print the release readiness report of a PyTorch version (e.g. 2.15.0)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("version", help="The PyTorch version, e.g. 2.15.0.")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, **options) -> None:
        try:
            report = release_reports.release_report(options["version"])
        except release_reports.InvalidReleaseVersion as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
            return
        self.stdout.write("\n".join(summary_lines(report)))


def summary_lines(report: dict) -> list[str]:
    """The report for a terminal: the counts, then each project not passing, worst first."""
    summary = report["summary"]
    previous = report["previous_version"] or "none"
    lines = [
        f"PyTorch {report['version']} (previous release: {previous}); "
        f"{'approved' if report['approved'] else 'not approved'}, "
        f"{len(report['targets'])} targets, {summary['projects']} projects with results.",
        ", ".join(
            f"{summary[name]} {release_reports.CLASSIFICATION_LABELS[name].lower()}"
            for name in release_reports.CLASSIFICATIONS
        ),
    ]
    for row in release_reports.report_rows(report):
        if row["classification"] == release_reports.PASSED:
            continue
        lines.append(f"- {row['project']['name']}: {row['classification']}")
        lines.extend(f"    {item['test']}: {item['message']}" for item in row["failures"])
        lines.extend(
            f"    new torch warning: {item['category']}: {item['message']}"
            for item in row["new_torch_warnings"]
        )
    return lines
