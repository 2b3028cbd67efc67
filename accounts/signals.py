"""Cache invalidation: forget cached token checks when what they captured changes."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from accounts.models import ApiToken, Profile
from accounts.services import forget_cached_tokens


def _forget(**which: Any) -> None:
    # Now, and again once the change is committed: a request of this process may read and cache the
    # old row between the two.
    forget_cached_tokens(**which)
    transaction.on_commit(lambda: forget_cached_tokens(**which))


def _user_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    _forget(user_id=instance.pk)


def _profile_changed(sender: Any, instance: Profile, **kwargs: Any) -> None:
    _forget(user_id=instance.user_id)


def _token_changed(sender: Any, instance: ApiToken, **kwargs: Any) -> None:
    _forget(token_id=instance.pk)


def connect() -> None:
    user_model = get_user_model()
    for signal in (post_save, post_delete):
        signal.connect(_user_changed, sender=user_model, dispatch_uid="accounts.forget_tokens.user")
        signal.connect(_profile_changed, sender=Profile, dispatch_uid="accounts.forget_tokens.profile")
        signal.connect(_token_changed, sender=ApiToken, dispatch_uid="accounts.forget_tokens.token")
