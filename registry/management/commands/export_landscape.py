"""python manage.py export_landscape PATH: write the registry as a landscape2 YAML file."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from registry.landscape import landscape_dump_yaml, landscape_export_document


class Command(BaseCommand):
    help = "Export the registry's categories and projects in the landscape2 YAML format."

    def add_arguments(self, parser):
        parser.add_argument("path", help="File to write ('-' for standard output).")

    def handle(self, *args, path: str, **options):
        document = landscape_export_document()
        text = landscape_dump_yaml(document)
        if path == "-":
            self.stdout.write(text, ending="")
            return
        target = Path(path)
        if not target.parent.is_dir():
            raise CommandError(f"{target.parent}: no such directory.")
        try:
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(target)
        except OSError as error:
            raise CommandError(f"Cannot write {target}: {error.strerror}") from None
        count = sum(len(s["items"]) for c in document["landscape"] for s in c["subcategories"])
        self.stdout.write(f"Wrote {count} projects to {target}.")
