"""The state of the tracking pages' tables, read from and written back to the query string.

A runs table's filter, sort, columns, page and view all live in the URL, so a view can be
bookmarked, shared, reloaded, and exported to CSV exactly as it is shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from django import forms
from django.http import QueryDict
from django.utils.http import urlencode

KINDS = ("attributes", "params", "metrics", "tags")
# Columns of the runs table that are run attributes, as MLflow's order_by names them.
ATTRIBUTE_SORTS = {"run_name", "status", "start_time", "end_time", "user_id"}
VIEW_TYPES = {"active": "ACTIVE_ONLY", "deleted": "DELETED_ONLY", "all": "ALL"}
DEFAULT_COLUMNS_PER_KIND = 5
MAX_FILTER_LENGTH = 4000
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ExperimentSearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=500, label="Search experiments")
    deleted = forms.BooleanField(required=False, label="Show deleted experiments")


def quoted_key(key: str) -> str:
    """A key as MLflow's search grammar spells it: bare when it is an identifier, else in backticks."""
    return key if _PLAIN_KEY.match(key) else "`" + key.replace("`", "``") + "`"


@dataclass(frozen=True)
class Column:
    kind: str  # params, metrics or tags
    key: str

    @property
    def token(self) -> str:
        return f"{self.kind}.{self.key}"

    @classmethod
    def parse(cls, token: str) -> Column | None:
        kind, _, key = token.partition(".")
        if kind not in ("params", "metrics", "tags") or not key:
            return None
        return cls(kind, key)


@dataclass(frozen=True)
class RunTableState:
    """What the runs table shows: filter, sort, columns, view (active/deleted/all) and page."""

    filter: str = ""
    sort: str = "attributes.start_time"
    descending: bool = True
    columns: tuple[Column, ...] = ()
    columns_chosen: bool = False  # False: show the defaults (the first few metrics and params)
    view: str = "active"
    page: str = "1"

    @classmethod
    def from_query(cls, query: QueryDict) -> RunTableState:
        raw_cols = query.getlist("cols")
        columns = tuple(c for c in (Column.parse(t) for t in raw_cols if t) if c is not None)
        sort = query.get("sort", "") or "attributes.start_time"
        descending = query.get("dir", "desc") != "asc"
        kind, _, key = sort.partition(".")
        if kind not in KINDS or not key or (kind == "attributes" and key not in ATTRIBUTE_SORTS):
            sort, descending = "attributes.start_time", True  # an unusable link: back to newest first
        view = query.get("view", "active")
        return cls(
            filter=query.get("filter", "").strip()[:MAX_FILTER_LENGTH],
            sort=sort,
            descending=descending,
            columns=tuple(dict.fromkeys(columns)),
            # The columns form always sends one empty `cols`, so choosing no columns at all is remembered.
            columns_chosen=bool(raw_cols),
            view=view if view in VIEW_TYPES else "active",
            page=query.get("page", "1"),
        )

    @property
    def view_type(self) -> str:
        return VIEW_TYPES[self.view]

    @property
    def order_by(self) -> list[str]:
        kind, _, key = self.sort.partition(".")
        direction = "DESC" if self.descending else "ASC"
        # The search adds start_time DESC and the run id after it, so equal values keep a stable order.
        return [f"{kind}.{quoted_key(key)} {direction}"]

    def with_defaults(self, keys: dict[str, list[str]]) -> RunTableState:
        """Keep only columns the experiment has; with no choice made, show the first few metrics and params."""
        present = {Column(kind, key) for kind in ("params", "metrics", "tags") for key in keys.get(kind, [])}
        if self.columns_chosen:
            return replace(self, columns=tuple(c for c in self.columns if c in present))
        defaults = [Column("metrics", k) for k in keys.get("metrics", [])[:DEFAULT_COLUMNS_PER_KIND]]
        defaults += [Column("params", k) for k in keys.get("params", [])[:DEFAULT_COLUMNS_PER_KIND]]
        return replace(self, columns=tuple(defaults))

    def keys_of(self, kind: str) -> list[str]:
        return [c.key for c in self.columns if c.kind == kind]

    def params(self, **changes: Any) -> list[tuple[str, str]]:
        """The state as query-string pairs, with `changes` applied (sort=..., page=..., view=...)."""
        state = replace(self, **{k: v for k, v in changes.items() if k in self.__dataclass_fields__})
        pairs: list[tuple[str, str]] = []
        if state.filter:
            pairs.append(("filter", state.filter))
        if state.sort != "attributes.start_time" or not state.descending:
            pairs.append(("sort", state.sort))
            pairs.append(("dir", "desc" if state.descending else "asc"))
        if state.view != "active":
            pairs.append(("view", state.view))
        if state.columns_chosen:
            pairs.append(("cols", ""))
            pairs.extend(("cols", c.token) for c in state.columns)
        if str(state.page) not in ("", "1"):
            pairs.append(("page", str(state.page)))
        return pairs

    def query(self, **changes: Any) -> str:
        return urlencode(self.params(**changes))

    def sort_query(self, sort: str) -> str:
        """The link of a column header: sort by it, flipping the direction if it is already the sort."""
        if sort == self.sort:
            return self.query(sort=sort, descending=not self.descending, page="1")
        # Numbers read best largest first, names and times in their natural order.
        descending = sort.startswith("metrics.") or sort in ("attributes.start_time", "attributes.end_time")
        return self.query(sort=sort, descending=descending, page="1")
