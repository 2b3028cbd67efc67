"""URLs of the DVC remote, included at `dvc/` by the root urls.

Only lowercase hex object names match (two characters, then thirty, then an optional `.dir`), so no
path segment that reaches a view can name anything outside the store; everything else is a 404.
"""

from django.urls import re_path

from datasets import dvc_views
from datasets.models import NAME_PATTERN

app_name = "dvc"
OBJECT = r"(?P<prefix>[0-9a-f]{2})/(?P<rest>[0-9a-f]{30})(?P<suffix>(?:\.dir)?)"

urlpatterns = [
    re_path(rf"^(?P<remote>{NAME_PATTERN})/files/md5/{OBJECT}\Z", dvc_views.dvc_object, name="object"),
    # DVC 2's layout, which DVC 3 still reads for .dvc files written without `hash: md5`.
    re_path(rf"^(?P<remote>{NAME_PATTERN})/{OBJECT}\Z", dvc_views.dvc_object, name="legacy-object"),
    re_path(r"^(?P<path>.*)\Z", dvc_views.not_found, name="not-found"),
]
