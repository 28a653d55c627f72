"""The TAC's moves on an application over the API, its discussion and the vote tally.

- `ReviewMovesMixin`: actions of `/api/v1/review-queue/{id}/` (the queue's viewset scopes the
  applications to what the TAC member may see, as the review page does: drafts and their own
  applications are 404s, and anyone outside the TAC gets 403): the workflow (moves open to
  the caller), a move of the state machine (request changes, open the vote, too early, ...),
  assigning reviewers, the landscape category, re-running the checks, closing the vote, the
  vote tally, and the whole discussion (TAC-internal messages included).
- `ApplicantCommentsMixin`: `/api/v1/applications/{id}/comments/`, the applicant's side of the
  discussion: only the messages shared with them, and theirs are always shared.

The rules are the pages' own: the services refuse (`NotAllowed` is a 403, any other refusal a
400 with the service's message) and `reviews.selectors` says which moves are open, who may
vote and who may close the vote.
"""

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from registry.models import Category
from reviews import selectors, services
from reviews.api_errors import service_call
from reviews.models import Comment, Submission, Vote
from reviews.roles import can_vote, conflict_reason
from reviews.states import SubmissionState

# -- serializers ----------------------------------------------------------------------------


class ReviewWorkflowSerializer(serializers.ModelSerializer):
    """Where an application stands in the review, and the moves open to the caller."""

    category = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="Landscape subcategory id."
    )
    reviewers = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)
    moves = serializers.SerializerMethodField(
        help_text="States the caller may move the application to (`transition`)."
    )

    class Meta:
        model = Submission
        fields = [
            "id",
            "state",
            "state_changed_at",
            "category",
            "reviewers",
            "vote_opened_at",
            "vote_closes_at",
            "decided_at",
            "moves",
        ]
        read_only_fields = fields

    @extend_schema_field(
        serializers.ListField(child=serializers.ChoiceField(SubmissionState.choices))
    )
    def get_moves(self, submission: Submission) -> list[str]:
        return selectors.reviewer_moves(submission=submission, user=self.context["request"].user)


class TransitionInputSerializer(serializers.Serializer):
    to = serializers.ChoiceField(choices=SubmissionState.choices)
    note = serializers.CharField(
        max_length=5000,
        required=False,
        allow_blank=True,
        default="",
        help_text="Required for changes_requested and too_early: the applicant reads it.",
    )
    confirm = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Open the vote although criteria are unknown or not met (without it, a 400 "
        "lists them under `unresolved`).",
    )


class AssignInputSerializer(serializers.Serializer):
    # A CharField (not a SlugRelatedField): it refuses a NUL byte before the database sees it.
    reviewer = serializers.CharField(
        max_length=150, help_text="Username of a TAC reviewer or staff member."
    )
    assign = serializers.BooleanField(
        required=False, default=True, help_text="false: unassign them."
    )

    def validate_reviewer(self, username: str):
        reviewer = get_user_model().objects.filter(username=username, is_active=True).first()
        if reviewer is None:
            raise serializers.ValidationError("No such user.")
        return reviewer


class CategoryInputSerializer(serializers.Serializer):
    category = serializers.PrimaryKeyRelatedField(
        queryset=Category.objects.filter(parent__isnull=False),
        help_text="Id of a landscape subcategory (`/api/v1/categories/`).",
    )


class CommentSerializer(serializers.ModelSerializer):
    author = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Comment
        fields = ["id", "author", "body", "shared_with_applicant", "created_at"]
        read_only_fields = fields


class CommentInputSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=10000, help_text="Markdown.")
    shared_with_applicant = serializers.BooleanField(
        required=False,
        default=False,
        help_text="TAC members only; the applicant's messages are always shared.",
    )


class BallotSerializer(serializers.ModelSerializer):
    voter = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Vote
        fields = ["voter", "choice", "updated_at"]
        read_only_fields = fields


class VoteTallySerializer(serializers.Serializer):
    """The vote as the review page shows it to the TAC."""

    eligible = serializers.IntegerField(help_text="Voting members without a conflict.")
    approve = serializers.IntegerField()
    reject = serializers.IntegerField()
    abstain = serializers.IntegerField()
    not_voted = serializers.IntegerField()
    required = serializers.IntegerField(help_text="Approvals needed to accept.")
    rule = serializers.CharField(help_text="more than half, or (hosted) at least two thirds")
    vote_opened_at = serializers.DateTimeField(allow_null=True)
    vote_closes_at = serializers.DateTimeField(allow_null=True)
    votes = BallotSerializer(many=True)
    my_vote = serializers.ChoiceField(choices=Vote.Choice.choices, allow_null=True)
    can_vote = serializers.BooleanField(help_text="The caller may vote now (`vote`).")
    vote_conflict = serializers.CharField(help_text="Why the caller does not vote ('' if none).")
    can_close = serializers.BooleanField(help_text="The caller may close the vote now.")


def _tally_data(submission: Submission, user) -> dict:
    tally = services.vote_tally(submission=submission)
    votes = list(submission.votes.select_related("voter").order_by("voter__username"))
    mine = next((vote.choice for vote in votes if vote.voter_id == user.pk), None)
    return {
        **{name: getattr(tally, name) for name in ("eligible", "approve", "reject", "abstain")},
        "not_voted": tally.not_voted,
        "required": tally.required,
        "rule": tally.rule,
        "vote_opened_at": submission.vote_opened_at,
        "vote_closes_at": submission.vote_closes_at,
        "votes": votes,
        "my_vote": mine,
        "can_vote": selectors.vote_open_to(submission=submission, user=user),
        "vote_conflict": (
            conflict_reason(submission=submission, user=user) if can_vote(user) else ""
        ),
        "can_close": selectors.vote_closable_by(submission=submission, user=user, tally=tally),
    }


def _comments_response(request: Request, submission: Submission, *, tac: bool) -> Response:
    """GET: the messages the caller may read; POST: a new message (201)."""
    if request.method == "POST":
        body = CommentInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        comment = service_call(
            services.comment_post, submission=submission, author=request.user, **body.validated_data
        )
        return Response(CommentSerializer(comment).data, status=status.HTTP_201_CREATED)
    comments = selectors.comments_for(submission=submission, tac=tac)
    return Response(CommentSerializer(comments, many=True).data)


# -- the TAC's side -------------------------------------------------------------------------


class ReviewMovesMixin:
    """Actions of the review queue's viewset (its `get_object` scopes to the TAC member)."""

    def _workflow(self, request: Request, submission: Submission) -> Response:
        submission.refresh_from_db()
        return Response(ReviewWorkflowSerializer(submission, context={"request": request}).data)

    @extend_schema(responses=ReviewWorkflowSerializer)
    @action(detail=True, methods=["get"])
    def workflow(self, request: Request, pk: str | None = None) -> Response:
        """The state, reviewers, category and vote window, and the moves open to the caller."""
        return self._workflow(request, self.get_object())

    def _move(self, request: Request, input_serializer: type, service, **renamed: str) -> Response:
        """Validate the body, call `service` with the application, the caller and the body's
        fields (under the service's name for them, `renamed`), answer with the workflow."""
        submission = self.get_object()
        body = input_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        fields = {renamed.get(name, name): value for name, value in body.validated_data.items()}
        service_call(service, submission=submission, actor=request.user, **fields)
        return self._workflow(request, submission)

    @extend_schema(request=TransitionInputSerializer, responses=ReviewWorkflowSerializer)
    @action(detail=True, methods=["post"])
    def transition(self, request: Request, pk: str | None = None) -> Response:
        """Move the application (see `moves` of `workflow`): request changes, back in review,
        open the vote, too early, withdraw (staff). As the review page's "Move" button."""
        return self._move(
            request, TransitionInputSerializer, services.submission_transition, confirm="confirmed"
        )

    @extend_schema(request=AssignInputSerializer, responses=ReviewWorkflowSerializer)
    @action(detail=True, methods=["post"])
    def assign(self, request: Request, pk: str | None = None) -> Response:
        """Assign (or, with `assign: false`, unassign) a reviewer (TAC reviewers and staff)."""
        return self._move(request, AssignInputSerializer, services.submission_assign_reviewer)

    @extend_schema(request=CategoryInputSerializer, responses=ReviewWorkflowSerializer)
    @action(detail=True, methods=["post"])
    def category(self, request: Request, pk: str | None = None) -> Response:
        """Set the landscape subcategory (needed before the vote opens)."""
        return self._move(request, CategoryInputSerializer, services.submission_set_category)

    @extend_schema(request=None, responses={202: ReviewWorkflowSerializer})
    @action(detail=True, methods=["post"])
    def checks(self, request: Request, pk: str | None = None) -> Response:
        """Run the automated checks again (queued; the criteria show them running)."""
        submission = self.get_object()
        service_call(services.submission_request_checks, submission=submission, actor=request.user)
        response = self._workflow(request, submission)
        response.status_code = status.HTTP_202_ACCEPTED
        return response

    @extend_schema(request=None, responses=ReviewWorkflowSerializer)
    @action(detail=True, methods=["post"], url_path="close-vote")
    def close_vote(self, request: Request, pk: str | None = None) -> Response:
        """Close the vote before its window ends, once every eligible member voted (TAC
        reviewers and staff); the decision follows the tally."""
        submission = self.get_object()
        service_call(services.vote_close, submission=submission, actor=request.user)
        return self._workflow(request, submission)

    @extend_schema(responses=VoteTallySerializer)
    @action(detail=True, methods=["get"])
    def tally(self, request: Request, pk: str | None = None) -> Response:
        """The vote's counts, threshold and ballots, as the review page shows them."""
        submission = self.get_object()
        return Response(VoteTallySerializer(_tally_data(submission, request.user)).data)

    @extend_schema(methods=["GET"], responses=CommentSerializer(many=True))
    @extend_schema(
        methods=["POST"], request=CommentInputSerializer, responses={201: CommentSerializer}
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def comments(self, request: Request, pk: str | None = None) -> Response:
        """The discussion, TAC-internal messages included; post a message (shared with the
        applicant only with `shared_with_applicant`)."""
        return _comments_response(request, self.get_object(), tac=True)


# -- the applicant's side -------------------------------------------------------------------


class ApplicantCommentsMixin:
    """The discussion action of the applicant's applications (`get_object`: their own)."""

    @extend_schema(methods=["GET"], responses=CommentSerializer(many=True))
    @extend_schema(
        methods=["POST"], request=CommentInputSerializer, responses={201: CommentSerializer}
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def comments(self, request: Request, pk: str | None = None) -> Response:
        """The messages shared with the applicant; post one (always shared with the TAC)."""
        return _comments_response(request, self.get_object(), tac=False)
