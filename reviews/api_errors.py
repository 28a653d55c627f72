"""The review services' refusals as API errors, for every API module of the review process:
`NotAllowed` is a 403, any other `ReviewError` a 400 carrying the service's own message."""

from typing import Any

from rest_framework import exceptions

from reviews.states import InvalidAnswers, NotAllowed, ReviewError, UnresolvedCriteria


class CriteriaUnresolved(exceptions.APIException):
    """A 400 listing the open criteria (numbers stay numbers: DRF's ValidationError would
    turn them into strings), so that the caller can confirm the move."""

    status_code = 400
    default_code = "unresolved_criteria"

    def __init__(self, error: UnresolvedCriteria):
        super().__init__()
        self.detail = {  # type: ignore[assignment]
            "detail": str(error),
            "unresolved": [
                {"number": c.number, "title": c.title, "outcome": c.outcome} for c in error.criteria
            ],
        }


def service_call(function, **kwargs) -> Any:
    """Run a service; its refusals become API errors with the service's own message."""
    try:
        return function(**kwargs)
    except NotAllowed as error:
        raise exceptions.PermissionDenied(str(error)) from None
    except InvalidAnswers as error:  # each refused answer under its own name, as DRF does
        raise exceptions.ValidationError(
            {"detail": str(error), **{name: [message] for name, message in error.errors.items()}}
        ) from None
    except UnresolvedCriteria as error:  # the caller confirms, as the page's second button
        raise CriteriaUnresolved(error) from None
    except ReviewError as error:
        raise exceptions.ValidationError({"detail": str(error)}) from None
