"""The HTML sign-in (django-allauth) behind the login throttle (config/login_throttle.py): it
shares the API login's count; a refused sign-in is the login page again, answered 429 with
Retry-After and the wait in words.

Signing in with GitHub (or connecting a GitHub account) proves the GitHub handle: the social
account adapter records it as the user's verified maintainer identity (registry/identities.py),
which makes the user a maintainer of the projects that name the handle."""

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.views import LoginView as AllauthLoginView
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.providers.base import AuthProcess
from django.contrib import messages
from django.core.exceptions import ValidationError

from config import login_throttle
from registry.identities import LinkResult, maintainer_identity_link_github

THROTTLED = "login_throttled"


class AccountAdapter(DefaultAccountAdapter):
    """Every password allauth checks (sign-in, re-authentication) goes through the rule."""

    def authenticate(self, request, **credentials):
        login = credentials.get("email") or credentials.get("username") or ""
        allauth_authenticate = super().authenticate
        try:
            return login_throttle.password_check_throttled(
                request=request,
                login=login,
                check=lambda: allauth_authenticate(request, **credentials),
            )
        except login_throttle.LoginThrottled as refused:
            raise ValidationError(
                str(refused), code=THROTTLED, params={"retry_after_s": refused.retry_after_s}
            ) from None


class LoginView(AllauthLoginView):
    """allauth's sign-in page; a throttled attempt gets status 429 and Retry-After."""

    def form_invalid(self, form):
        response = super().form_invalid(form)
        for error in form.non_field_errors().as_data():
            if error.code == THROTTLED:
                response.status_code = 429
                response["Retry-After"] = str(error.params["retry_after_s"])
        return response


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    """A GitHub login links the user to their GitHub handle, whichever way it ends: an existing
    account signing in, a new account signing up, or a signed-in user connecting GitHub."""

    def pre_social_login(self, request, sociallogin):
        super().pre_social_login(request, sociallogin)
        connecting = sociallogin.state.get("process") == AuthProcess.CONNECT
        if connecting and request.user.is_authenticated:
            # allauth refuses to move a GitHub account that another user holds.
            if not sociallogin.is_existing or sociallogin.user == request.user:
                github_identity_link(request, user=request.user, sociallogin=sociallogin)
        elif sociallogin.is_existing:
            github_identity_link(request, user=sociallogin.user, sociallogin=sociallogin)
        # A new account is linked once it is saved (save_user).

    def save_user(self, request, sociallogin, form=None):
        user = super().save_user(request, sociallogin, form=form)
        github_identity_link(request, user=user, sociallogin=sociallogin)
        return user


def github_identity_link(request, *, user, sociallogin) -> None:
    if sociallogin.account.provider != "github":
        return
    login = (sociallogin.account.extra_data or {}).get("login", "")
    outcome = maintainer_identity_link_github(user=user, github_handle=login)
    if outcome.result == LinkResult.TAKEN:
        messages.warning(
            request,
            f"The GitHub account @{login} is already linked to another account here, so it was "
            "not linked to yours. Write to the foundation's staff if it is yours.",
        )
    elif outcome.result == LinkResult.LINKED and outcome.promoted:
        names = ", ".join(project.name for project in outcome.promoted)
        messages.info(request, f"You are now listed as a maintainer of {names}.")
