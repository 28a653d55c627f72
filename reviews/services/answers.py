"""The applicant's answers as they may be stored: the rules that hold on every save, draft or
not. URLs are http(s) (the repository and the additional repositories follow the GitHub
repository rule of `registry.repository_urls`), text fits its column and holds no NUL byte,
one-line answers have one line, lists are bounded and each entry is well formed.

Completeness (required answers, the description's word count) waits for `submission_submit`.
The HTML form and the API serializer call `submission_answers_clean` to show each message next
to its answer; `submission_create` and `submission_update` call it again, so nothing reaches
the database around it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator
from django.db.models import Field

from registry.repository_urls import OWNER_RE, InvalidRepositoryURL, parse_repository_url
from registry.web_urls import is_web_url
from reviews.checks import PYPI_NAME_RE
from reviews.models import ANSWER_FIELDS, Submission
from reviews.states import InvalidAnswers, ReviewError

MAX_EMAILS, MAX_HANDLES, MAX_REPOS = 10, 30, 20
MAX_EMAIL_LENGTH = 254
ONE_LINE_ANSWERS = ("summary", "project_name", "license", "pytorch_versions", "tac_sponsor")
WEB_URL_ANSWERS = ("website_url", "documentation_url", "backing_org_url", "slides_url", "video_url")
BAD_WEB_URL = "Enter a valid URL (http:// or https://)."

_web_url_validator = URLValidator(schemes=["http", "https"])
_email_validator = EmailValidator()


def _clean_web_url(url: str) -> str:
    if not is_web_url(url):
        raise ValueError(BAD_WEB_URL)
    try:
        _web_url_validator(url)
    except ValidationError:
        raise ValueError(BAD_WEB_URL) from None
    return url


def _clean_repository_url(url: str) -> str:
    try:
        return parse_repository_url(url).url
    except InvalidRepositoryURL as error:
        raise ValueError(str(error)) from None


def _clean_pypi_name(name: str) -> str:
    if not PYPI_NAME_RE.fullmatch(name):
        raise ValueError("Not a valid PyPI project name.")
    return name


TEXT_RULES: dict[str, Callable[[str], str]] = {
    "repository_url": _clean_repository_url,
    "pypi_name": _clean_pypi_name,
    **{name: _clean_web_url for name in WEB_URL_ANSWERS},
}


def _clean_emails(emails: list[str]) -> list[str]:
    for email in emails:
        try:
            _email_validator(email)
        except ValidationError:
            raise ValueError(f"{email[:100]!r} is not a valid email address.") from None
        if len(email) > MAX_EMAIL_LENGTH:
            raise ValueError(f"An email address is at most {MAX_EMAIL_LENGTH} characters.")
    return emails


def _clean_handles(handles: list[str]) -> list[str]:
    seen, unique = set(), []
    for handle in (handle.removeprefix("@") for handle in handles):
        if not OWNER_RE.fullmatch(handle):
            raise ValueError(
                f"{handle[:60]!r} is not a GitHub handle (letters, digits and single "
                "hyphens, at most 39 characters)."
            )
        if handle.lower() not in seen:
            seen.add(handle.lower())
            unique.append(handle)
    return unique


def _clean_repositories(urls: list[str]) -> list[str]:
    repositories = []
    for url in urls:
        try:
            repositories.append(parse_repository_url(url).url)
        except InvalidRepositoryURL as error:
            raise ValueError(f"{url[:100]}: {error}") from None
    return repositories


LIST_RULES: dict[str, tuple[int, Callable[[list[str]], list[str]]]] = {
    "contact_emails": (MAX_EMAILS, _clean_emails),
    "maintainer_handles": (MAX_HANDLES, _clean_handles),
    "additional_repos": (MAX_REPOS, _clean_repositories),
}


def _clean_text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"Give text, not {type(value).__name__}.")
    if "\x00" in value:
        raise ValueError("Text may not contain NUL characters.")
    text = value.strip()
    field = Submission._meta.get_field(name)
    if not isinstance(field, Field):  # every answer is a concrete column
        raise TypeError(f"{name} is not a column of an application.")
    if field.max_length is not None and len(text) > field.max_length:
        raise ValueError(
            f"Ensure this value has at most {field.max_length} characters (it has {len(text)})."
        )
    if name in ONE_LINE_ANSWERS and ("\n" in text or "\r" in text):
        raise ValueError("One line only.")
    allowed = {key for key, _ in field.choices or ()}
    if allowed and (text or not field.blank) and text not in allowed:
        raise ValueError(f"Select a valid choice. {text[:40]} is not one of the available choices.")
    rule = TEXT_RULES.get(name)
    return rule(text) if rule and text else text


def _clean_list(name: str, value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("Give a list of text entries.")
    if any("\x00" in item for item in value):
        raise ValueError("Text may not contain NUL characters.")
    items = [item.strip() for item in value if item.strip()]
    limit, rule = LIST_RULES[name]
    if len(items) > limit:
        raise ValueError(f"At most {limit} entries.")
    return rule(items)


def submission_answers_clean(*, answers: Mapping[str, Any]) -> dict[str, Any]:
    """The answers in their stored form (stripped, canonical repository URLs, unique handles),
    or `InvalidAnswers` naming every refused answer. Unanswered fields are not required here."""
    unknown = set(answers) - set(ANSWER_FIELDS)
    if unknown:
        raise ReviewError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    cleaned: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, value in answers.items():
        try:
            cleaned[name] = (
                _clean_list(name, value) if name in LIST_RULES else _clean_text(name, value)
            )
        except ValueError as error:
            errors[name] = str(error)
    if errors:
        raise InvalidAnswers(errors)
    return cleaned
