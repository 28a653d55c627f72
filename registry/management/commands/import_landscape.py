"""python manage.py import_landscape PATH: load a landscape2 file into the registry.

Logos are read from the folder `landscape-logos/` next to the file (or `--logos DIR`), as
landscape2 keeps them; without that folder the projects' logos are left as they are.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from registry.landscape import LandscapeError, landscape_parse, landscape_read_file
from registry.services import landscape_import


class Command(BaseCommand):
    help = "Import (create or update) projects and categories from a landscape2 YAML file."

    def add_arguments(self, parser):
        parser.add_argument("path", help="Path of the landscape YAML file.")
        parser.add_argument(
            "--logos",
            default=None,
            help="Folder of the items' logo files (default: landscape-logos/ next to the file).",
        )

    def handle(self, *args, path: str, logos: str | None = None, **options):
        try:
            parsed = landscape_parse(landscape_read_file(path))
        except LandscapeError as error:
            raise CommandError(f"Nothing imported: {error}") from None
        logo_directory = Path(logos) if logos else Path(path).parent / "landscape-logos"
        if logos and not logo_directory.is_dir():
            raise CommandError(f"Nothing imported: {logos}: no such folder.")
        report = landscape_import(
            parsed=parsed, logo_directory=logo_directory if logo_directory.is_dir() else None
        )
        write = self.stdout.write
        write(
            f"created {len(report.created)}, updated {len(report.updated)}, "
            f"unchanged {len(report.unchanged)}, skipped {len(report.skipped)}, "
            f"flagged {len(report.flagged)}"
        )
        if logo_directory.is_dir():
            write(
                f"  logos: {report.logos_stored} new file{'s' * (report.logos_stored != 1)} "
                f"stored ({report.logos_rendered} with a card rendering) from {logo_directory}"
            )
        else:
            write(f"  logos: no folder {logo_directory}; logos left as they were")
        write(
            f"  reviews: {report.reviews_scheduled} active "
            f"project{'s' * (report.reviews_scheduled != 1)} given a next periodic review date"
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
