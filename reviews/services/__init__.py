"""Every write of the review process, one module per part; import them from here.

`submission_transition` is the only writer of `Submission.state`, and
`periodic_review_transition` the only writer of `PeriodicReview.state`.
"""

from reviews.services.periodic import (
    GRACE_PERIOD,
    REVIEW_INTERVAL,
    periodic_review_decide,
    periodic_review_evaluate,
    periodic_review_start,
    periodic_review_transition,
    periodic_reviews_due,
)
from reviews.services.results import (
    compat_run_record,
    criteria_ensure_rows,
    criterion_answer,
    criterion_override,
    submission_run_checks,
)
from reviews.services.submissions import (
    RESUBMIT_AFTER_MONTHS,
    add_months,
    comment_post,
    onboarding_task_set,
    resubmission_opens_on,
    roles_on,
    submission_assign_reviewer,
    submission_create,
    submission_missing_answers,
    submission_request_checks,
    submission_set_category,
    submission_submit,
    submission_transition,
    submission_update,
    submission_withdraw,
    vote_window,
)
from reviews.services.votes import (
    VoteTally,
    conflict_reason,
    eligible_voters,
    vote_cast,
    vote_close,
    vote_tally,
    votes_close_due,
)
from reviews.states import (
    InvalidTransition,
    NotAllowed,
    PeriodicReviewState,
    ResubmissionTooSoon,
    ReviewError,
    SubmissionIncomplete,
)

P = PeriodicReviewState

__all__ = [
    "GRACE_PERIOD", "REVIEW_INTERVAL", "RESUBMIT_AFTER_MONTHS", "P", "InvalidTransition",
    "NotAllowed", "ResubmissionTooSoon", "ReviewError", "SubmissionIncomplete", "VoteTally",
    "add_months", "comment_post", "compat_run_record", "conflict_reason", "criteria_ensure_rows",
    "criterion_answer", "criterion_override", "eligible_voters", "onboarding_task_set",
    "periodic_review_decide", "periodic_review_evaluate", "periodic_review_start",
    "periodic_review_transition", "periodic_reviews_due", "resubmission_opens_on",
    "roles_on", "submission_assign_reviewer", "submission_create", "submission_missing_answers",
    "submission_request_checks", "submission_run_checks", "submission_set_category",
    "submission_submit", "submission_transition", "submission_update", "submission_withdraw",
    "vote_cast", "vote_close", "vote_tally", "vote_window", "votes_close_due",
]  # fmt: skip
