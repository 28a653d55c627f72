"""Start the nightly run now: every active project on every active target, incremental (cells
whose project, job and environment did not change are carried from their last result) or,
with `--force`, full (every cell runs). Prints planned, dispatched and carried cells.

Without `--force` it claims tonight's slot, as the beat does (a second start the same night
makes nothing); with `--force` a manual slot of its own (one per minute).
"""

import json

from django.core.management.base import BaseCommand
from django.utils import timezone

from ci_runners import services
from ci_runners.models import CompatRun


class Command(BaseCommand):
    help = "Start the nightly compatibility run now (--force: run every cell, carry nothing)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--force", action="store_true", help="Run every cell (a full run): carry nothing."
        )
        parser.add_argument("--json", action="store_true", help="Print the counts as JSON.")

    def handle(self, *args, **options) -> None:
        force = bool(options["force"])
        slot = services.manual_night_slot() if force else timezone.localdate().isoformat()
        plan = services.night_start(
            slot=slot,
            force=force,
            trigger=CompatRun.Trigger.MANUAL if force else CompatRun.Trigger.SCHEDULE,
        )
        counts = {
            "slot": slot,
            "started": plan is not None,
            "forced": force,
            "projects": len(plan.projects) if plan else 0,
            "planned": plan.planned if plan else 0,
            "dispatched": plan.dispatched if plan else 0,
            "carried": plan.carried if plan else 0,
        }
        if options["json"]:
            self.stdout.write(json.dumps(counts))
            return
        if plan is None:
            self.stdout.write(f"Night {slot}: already started (or no active target); nothing made.")
            return
        self.stdout.write(
            f"Night {slot}{' (full)' if force else ''}: {counts['planned']} cells planned for "
            f"{counts['projects']} projects, {counts['dispatched']} dispatched, "
            f"{counts['carried']} carried."
        )
