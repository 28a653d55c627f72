"""The HTML sign-in (django-allauth) behind the login throttle (config/login_throttle.py): it
shares the API login's count; a refused sign-in is the login page again, answered 429 with
Retry-After and the wait in words."""

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.views import LoginView as AllauthLoginView
from django.core.exceptions import ValidationError

from config import login_throttle

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
