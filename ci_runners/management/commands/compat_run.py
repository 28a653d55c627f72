"""Start a compatibility run of one project from the command line, optionally waiting for it."""

import json
import sys
import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from ci_runners import services
from ci_runners.models import CompatRun, TorchTarget
from ci_runners.states import FINAL_STATES
from registry.models import Project

POLL_S = 2.0


def run_as_dict(run: CompatRun) -> dict:
    return {
        "id": run.pk,
        "project": run.project.slug if run.project_id else None,
        "source_url": run.source_url,
        "trigger": run.trigger,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "cells": [
            {
                "id": cell.pk,
                "target": cell.target.label,
                "torch_version": cell.target.version,
                "state": cell.state,
                "attempt": cell.attempt,
                "runner": cell.runner_name,
                "counts": cell.counts,
                "duration_s": cell.duration_s,
                "error": cell.error,
                "error_code": cell.error_code,
                "tests_collected": cell.tests_collected,
                "suite_shrunk": cell.suite_shrunk,
                "recipe_hash": cell.recipe_hash,
            }
            for cell in run.cells.select_related("target").order_by("pk")
        ],
    }


def cell_summary(cell: dict) -> str:
    """One line of a cell: its state (with an errored cell's code, a not-installable cell's
    reason), its counts, and a warning when its suite shrank."""
    line = f"{cell['target']}: {cell['state']}"
    if cell["state"] == "errored":
        line += f" [{cell['error_code'] or 'no code'}] (infrastructure) {cell['error']}".rstrip()
    elif cell["state"] == "not_installable" and cell["error"]:
        line += f" ({cell['error']})"
    if cell["counts"]:
        line += f" {cell['counts']}"
    if cell["suite_shrunk"]:
        line += " WARNING: fewer tests collected than on another version"
    return line


class Command(BaseCommand):
    help = "Run a project's test suite against the active PyTorch targets (or one version)."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument("--target", help="Only this PyTorch version (e.g. 2.14.1).")
        parser.add_argument("--wait", action="store_true", help="Wait until every cell is final.")
        parser.add_argument("--json", action="store_true", help="Print the run and its cells.")

    def handle(self, *args, **options):
        try:
            project = Project.objects.get(slug=options["project"])
        except Project.DoesNotExist:
            raise CommandError(f"No project with slug {options['project']!r}.") from None
        targets = None
        if options["target"]:
            targets = list(TorchTarget.objects.filter(version=options["target"]))
            if not targets:
                known = ", ".join(TorchTarget.objects.values_list("version", flat=True))
                raise CommandError(f"No target {options['target']!r} (known: {known or 'none'}).")
        try:
            run = services.compat_run_request(
                project=project, targets=targets, trigger=CompatRun.Trigger.MANUAL
            )
        except services.CompatRunRefused as exc:
            raise CommandError(str(exc)) from exc
        total = run.cells.count()
        if not options["json"]:
            self.stdout.write(f"Run {run.pk}: {total} cells queued for {project.name}.")
        if options["wait"]:
            with tqdm(total=total, file=sys.stderr, desc=f"run {run.pk}", unit="cell") as bar:
                while True:
                    done = run.cells.filter(state__in=FINAL_STATES).count()
                    bar.update(done - bar.n)
                    if done >= total:
                        break
                    time.sleep(POLL_S)
        run.refresh_from_db()
        if options["json"]:
            self.stdout.write(json.dumps(run_as_dict(run), indent=2))
        elif options["wait"]:
            for cell in run_as_dict(run)["cells"]:
                self.stdout.write(f"  {cell_summary(cell)}")
