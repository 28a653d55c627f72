"""Every write of the compatibility runs, one module per part; import them from here.

- `runs`: requesting and cancelling runs.
- `dispatch`: jobs, messages to runner hosts, each project's concurrency limit.
- `cells`: `cell_transition`, the one writer of `CompatCell.state`; progress, results and
  what follows when cells become final.
- `fleet`: runner heartbeats and the reaper.
- `night_plan`: the incremental night, which cells run and which are carried.
- `releases`: nightly runs, new PyTorch releases on PyPI (a target per runner setup, a notice
  to staff), approving a release (its readiness run).
- `test_configs`: staff's override of a project's discovered test recipe.
- `bisection`: first bad release, a bisection over the torch releases between two ends.

Messages to runner hosts go out with `transaction.on_commit`, by task name (see
`ci_runners.broker`).
"""

from ci_runners.services.bisection import (
    BisectionRefused,
    bisection_cancel,
    bisection_pairs,
    bisection_start,
    bisection_step,
    bisections_start_for_new_breaks,
    releases_between,
)
from ci_runners.services.cells import (
    LOG_FILE_MAX_CHARS,
    LOG_TAIL_CHARS,
    cell_record_progress,
    cell_record_result,
    cell_transition,
    cells_record_results,
    cells_record_results_or_resend,
)
from ci_runners.services.dispatch import CHUNK, DEFAULT_TIMEOUT_S, UNLIMITED
from ci_runners.services.fleet import reap_stale_cells, runner_heartbeat_record
from ci_runners.services.night_plan import NightPlan, night_plan
from ci_runners.services.releases import (
    RunnerSetup,
    manual_night_slot,
    night_start,
    nightly_runs,
    projects_to_run,
    runner_setups,
    staff_emails,
    torch_release_approve,
    torch_release_notice_send,
    torch_releases_check,
    torch_target_approve,
)
from ci_runners.services.runs import (
    CompatRunRefused,
    compat_run_cancel,
    compat_run_request,
    compat_runs_request_for_projects,
)
from ci_runners.services.test_configs import (
    OVERRIDE_FIELDS,
    TestConfigInvalid,
    TestOverride,
    project_test_config_update,
    test_override_clean,
    test_override_of,
)

__all__ = [
    "CHUNK", "DEFAULT_TIMEOUT_S", "LOG_FILE_MAX_CHARS", "LOG_TAIL_CHARS", "OVERRIDE_FIELDS",
    "UNLIMITED", "BisectionRefused", "CompatRunRefused", "TestConfigInvalid", "TestOverride",
    "bisection_cancel", "bisection_pairs", "bisection_start", "bisection_step",
    "bisections_start_for_new_breaks", "releases_between",
    "cell_record_progress", "cell_record_result", "cell_transition", "cells_record_results",
    "cells_record_results_or_resend",
    "compat_run_cancel", "compat_run_request", "compat_runs_request_for_projects",
    "NightPlan", "manual_night_slot", "night_plan", "night_start",
    "nightly_runs", "project_test_config_update", "projects_to_run", "reap_stale_cells",
    "runner_heartbeat_record", "test_override_clean", "test_override_of", "torch_releases_check",
    "torch_target_approve",
    "RunnerSetup", "runner_setups", "staff_emails", "torch_release_approve",
    "torch_release_notice_send",
]  # fmt: skip
