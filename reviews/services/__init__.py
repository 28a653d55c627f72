"""Every write of the review process, one module per part; import them from here.

`submission_transition` is the only writer of `Submission.state`, and
`periodic_review_transition` the only writer of `PeriodicReview.state`.

- `submissions`: applications, their state machine, the TAC's bookkeeping, onboarding.
- `answers`: the rules an application's answers meet on every save (the form and the API
  call them too).
- `automated_checks`: GitHub and PyPI measured, a compatibility run asked for.
- `results`: criteria results: automated evidence, reviewers' answers, overrides.
- `compat`: compatibility runs for the review: requested, and recorded when they finish.
- `votes`: the TAC vote, its tally and its decision.
- `periodic`: the periodic review's state machine; `periodic_clock`: its daily clock.
- `events` (the audit log), `permissions` (roles on an application), `enqueue` (tasks sent
  by name on commit): shared by the modules above.
"""

from reviews.services.answers import (
    MAX_EMAILS,
    MAX_HANDLES,
    MAX_REPOS,
    submission_answers_clean,
)
from reviews.services.automated_checks import submission_request_checks, submission_run_checks
from reviews.services.compat import compat_run_record
from reviews.services.periodic import (
    GRACE_PERIOD,
    REVIEW_INTERVAL,
    periodic_review_decide,
    periodic_review_evaluate,
    periodic_review_transition,
)
from reviews.services.periodic_clock import periodic_review_start, periodic_reviews_due
from reviews.services.permissions import roles_on
from reviews.services.results import (
    criteria_ensure_rows,
    criterion_answer,
    criterion_override,
)
from reviews.services.submissions import (
    RESUBMIT_AFTER_MONTHS,
    add_months,
    comment_post,
    onboarding_task_set,
    resubmission_opens_on,
    submission_assign_reviewer,
    submission_create,
    submission_missing_answers,
    submission_set_category,
    submission_submit,
    submission_transition,
    submission_update,
    submission_withdraw,
    vote_window,
)
from reviews.services.votes import (
    VoteTally,
    eligible_voters,
    vote_cast,
    vote_close,
    vote_tally,
    votes_close_due,
)
from reviews.states import (
    InvalidAnswers,
    InvalidTransition,
    NotAllowed,
    PeriodicReviewState,
    ResubmissionTooSoon,
    ReviewError,
    SubmissionIncomplete,
    UnresolvedCriteria,
)

P = PeriodicReviewState

__all__ = [
    "GRACE_PERIOD", "REVIEW_INTERVAL", "RESUBMIT_AFTER_MONTHS", "P", "InvalidAnswers",
    "InvalidTransition", "MAX_EMAILS", "MAX_HANDLES", "MAX_REPOS", "submission_answers_clean",
    "NotAllowed", "ResubmissionTooSoon", "ReviewError", "SubmissionIncomplete", "VoteTally",
    "add_months", "comment_post", "compat_run_record", "criteria_ensure_rows",
    "criterion_answer", "criterion_override", "eligible_voters", "onboarding_task_set",
    "periodic_review_decide", "periodic_review_evaluate", "periodic_review_start",
    "periodic_review_transition", "periodic_reviews_due", "resubmission_opens_on",
    "roles_on", "submission_assign_reviewer", "submission_create", "submission_missing_answers",
    "submission_request_checks", "submission_run_checks", "submission_set_category",
    "submission_submit", "submission_transition", "submission_update", "submission_withdraw",
    "UnresolvedCriteria",
    "vote_cast", "vote_close", "vote_tally", "vote_window", "votes_close_due",
]  # fmt: skip
