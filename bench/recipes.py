"""Benchmark of test recipe discovery on the corpus (`tests/fixtures/projects`).

Run from the repo root: `.venv/bin/python bench/recipes.py`. Prints one JSON object: the
discovery time of each corpus project from a git checkout (ms, best of 5), the slowest, and
the corpus accuracy (share of projects whose recipe matches expected.json's "recipe" facts).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ci_runners.agent.recipe import RecipeError, discover_recipe  # noqa: E402
from tests.agent.corpus import corpus_names, corpus_repo, expected  # noqa: E402

REPEATS = 5


def _measure(checkout: Path) -> tuple[float, object]:
    best, recipe = float("inf"), None
    for _ in range(REPEATS):
        started = time.perf_counter()
        try:
            recipe = discover_recipe(checkout=checkout)
        except RecipeError as exc:
            recipe = exc
        best = min(best, time.perf_counter() - started)
    return best * 1000, recipe


def main() -> None:
    timings, mismatches = {}, {}
    with tempfile.TemporaryDirectory() as root:
        for name in corpus_names():
            checkout = corpus_repo(name, Path(root))
            ms, recipe = _measure(checkout)
            timings[name] = round(ms, 2)
            facts = expected(name)["recipe"]
            if isinstance(recipe, RecipeError):
                mismatches[name] = str(recipe)
                continue
            found = {key: getattr(recipe, key) for key in facts}
            if found != facts:
                mismatches[name] = {k: found[k] for k in facts if found[k] != facts[k]}
    total = len(timings)
    print(
        json.dumps(
            {
                "discovery_ms": timings,
                "max_ms": max(timings.values()),
                "projects": total,
                "accuracy": round((total - len(mismatches)) / total, 3),
                "mismatches": mismatches,
            }
        )
    )


if __name__ == "__main__":
    main()
