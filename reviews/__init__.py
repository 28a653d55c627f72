"""TAC reviews: applications, criteria, the review state machine, votes, periodic review."""
