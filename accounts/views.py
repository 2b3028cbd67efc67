"""Login, logout and the API token pages."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.models import ApiToken
from accounts.services import create_api_token, revoke_api_token, role_of


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. 'laptop mlflow client'")


def tokens(request: HttpRequest) -> HttpResponse:
    """The user's own tokens; a new token's secret is shown exactly once, right after creation."""
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        issued = create_api_token(request.user, form.cleaned_data["name"], actor=request.user)
        # Post/redirect/get: a reload must not create a second token. The secret rides in the
        # session for exactly one page view.
        request.session["new_token_secret"] = issued.secret
        return redirect("accounts:tokens")
    new_secret = request.session.pop("new_token_secret", None)
    user_tokens = ApiToken.objects.filter(user=request.user)
    return render(
        request,
        "accounts/tokens.html",
        {"form": form, "tokens": user_tokens, "new_secret": new_secret, "role": role_of(request.user)},
    )


@require_POST
def revoke_token(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    revoke_api_token(token, actor=request.user)
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("accounts:tokens")
