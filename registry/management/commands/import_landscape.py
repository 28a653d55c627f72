"""python manage.py import_landscape PATH: load a landscape2 file into the registry."""

from django.core.management.base import BaseCommand, CommandError

from registry.landscape import LandscapeError, landscape_parse, landscape_read_file
from registry.services import landscape_import


class Command(BaseCommand):
    help = "Import (create or update) projects and categories from a landscape2 YAML file."

    def add_arguments(self, parser):
        parser.add_argument("path", help="Path of the landscape YAML file.")

    def handle(self, *args, path: str, **options):
        try:
            parsed = landscape_parse(landscape_read_file(path))
        except LandscapeError as error:
            raise CommandError(f"Nothing imported: {error}") from None
        report = landscape_import(parsed=parsed)
        write = self.stdout.write
        write(
            f"created {len(report.created)}, updated {len(report.updated)}, "
            f"unchanged {len(report.unchanged)}, skipped {len(report.skipped)}, "
            f"flagged {len(report.flagged)}"
        )
        by_reason: dict[str, list[str]] = {}
        for where, reason in report.skipped:
            by_reason.setdefault(reason, []).append(where)
        for reason, items in by_reason.items():
            if len(items) > 3:
                write(f"  skipped {len(items)} items: {reason} ({', '.join(items[:3])}, ...)")
            else:
                for where in items:
                    write(f"  skipped: {where}: {reason}")
        for name, reason in report.flagged:
            write(self.style.WARNING(f"  flagged: {name}: {reason}"))
