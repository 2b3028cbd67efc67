"""Searching runs and experiments: MLflow's filter syntax plus OR and parentheses, ordering, keyset paging."""

from __future__ import annotations

import base64
import json
import math
import random
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from experiments import services
from experiments.entities import RUN_PREFETCH, experiment_json, run_json, runs_json
from experiments.models import (
    Experiment,
    ExperimentPermission,
    LifecycleStage,
    LoggedModel,
    Permission,
    Run,
    RunOutput,
)
from experiments.search import (
    BoolOp,
    Comparison,
    SearchError,
    parse_filter,
    runs_queryset,
    search_experiments,
    search_runs,
)
from tests.conftest import make_user
from tests.experiments.factories import T0, ExperimentFactory, RunFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_kept_shapes() -> None:
    """Each test starts with no compiled first pages: on SQLite the ids of one test's rows come back
    in the next, and a shape kept by an earlier test would make a first search a hit."""
    from experiments.search.compiled import CACHE

    CACHE.clear()


API = "/api/2.0/mlflow/"


# Data --------------------------------------------------------------------------------------------


@pytest.fixture
def zoo(editor: Any) -> dict[str, Run]:
    """Five runs whose values exercise every comparator: NaN, ±infinity, missing keys, case."""
    experiment = ExperimentFactory(name="zoo", owner=editor)
    return {
        "alpha": RunFactory(
            experiment=experiment,
            run_name="alpha",
            start_time=T0 + 1000,
            params={"lr": "0.1", "model": "cnn"},
            tags={"team": "vision", "my tag": "x", "stage": "b"},
            metrics={"acc": 0.9, "loss": 0.3},
            status="FINISHED",
            end_time=T0 + 10_000,
        ),
        "beta": RunFactory(
            experiment=experiment,
            run_name="beta",
            start_time=T0 + 2000,
            params={"lr": "0.01", "model": "rf"},
            tags={"team": "nlp", "stage": "a"},
            metrics={"acc": [0.2, 0.7], "loss": math.inf},  # the latest acc is 0.7
            status="FAILED",
            end_time=T0 + 20_000,
        ),
        "gamma": RunFactory(
            experiment=experiment,
            run_name="gamma",
            start_time=T0 + 3000,
            params={"lr": "0.1", "model": "CNN"},
            tags={"team": "vision", "stage": "c"},
            metrics={"acc": math.nan, "loss": -math.inf},
        ),
        "delta": RunFactory(
            experiment=experiment, run_name="delta", start_time=T0 + 4000, user_id="bob", tags={"team": "Vision"}
        ),
        "epsilon": RunFactory(
            experiment=experiment,
            run_name="epsilon",
            start_time=T0 + 5000,
            params={"model": "cnn_v2"},
            metrics={"acc": 0.0, "loss": 0.5},
        ),
    }


def experiment_ids(zoo: dict[str, Run]) -> list[str]:
    return [str(zoo["alpha"].experiment_id)]


def names(
    user: Any, zoo: dict[str, Run], filter_string: str = "", order_by: Any = (), view: str = "ACTIVE_ONLY"
) -> Any:
    return [r.name for r in runs_queryset(user, experiment_ids(zoo), filter_string, order_by, view)]


# The parser --------------------------------------------------------------------------------------


def test_an_empty_filter_parses_to_nothing() -> None:
    assert parse_filter("") is None
    assert parse_filter("   ") is None


def test_and_binds_tighter_than_or_and_parentheses_override_it() -> None:
    a, b, c = "metrics.a > 1", "params.b = 'x'", "tags.c = 'y'"
    assert parse_filter(f"{a} OR {b} AND {c}") == BoolOp(
        "OR",
        (
            Comparison("metric", "a", ">", 1.0, 0),
            BoolOp("AND", (Comparison("param", "b", "=", "x", 17), Comparison("tag", "c", "=", "y", 36))),
        ),
    )
    grouped = parse_filter(f"({a} or {b}) and {c}")
    assert isinstance(grouped, BoolOp) and grouped.op == "AND"
    assert isinstance(grouped.children[0], BoolOp) and grouped.children[0].op == "OR"


@pytest.mark.parametrize(
    ("filter_string", "entity", "key"),
    [
        ("metrics.acc > 1", "metric", "acc"),
        ("metric.acc > 1", "metric", "acc"),
        ("metrics.`my metric` > 1", "metric", "my metric"),
        ('metrics."val/loss" > 1', "metric", "val/loss"),
        ("params.lr = 'x'", "param", "lr"),
        ("param.lr = 'x'", "param", "lr"),
        ("parameters.lr = 'x'", "param", "lr"),
        ("tags.mlflow.runName = 'x'", "tag", "mlflow.runName"),
        ("tags.\"mlflow.user\" = 'x'", "tag", "mlflow.user"),
        ("tag.`my tag` = 'x'", "tag", "my tag"),
        ("attributes.status = 'x'", "attribute", "status"),
        ("attribute.status = 'x'", "attribute", "status"),
        ("attr.status = 'x'", "attribute", "status"),
        ("run.status = 'x'", "attribute", "status"),
        ("status = 'x'", "attribute", "status"),
        ("created > 1", "attribute", "start_time"),
        ("Created > 1", "attribute", "start_time"),
        ("attributes.`Run name` = 'x'", "attribute", "run_name"),
        ("datasets.digest = 'x'", "dataset", "digest"),
    ],
)
def test_identifiers_accept_mlflows_prefixes_aliases_and_quoting(filter_string: str, entity: str, key: str) -> None:
    node = parse_filter(filter_string)
    assert isinstance(node, Comparison) and (node.entity, node.key) == (entity, key)


@pytest.mark.parametrize(
    ("literal", "value"),
    [("1", 1.0), ("-2", -2.0), ("0.5", 0.5), (".5", 0.5), ("-1.5e-3", -0.0015), ("2E+3", 2000.0), ("1e400", math.inf)],
)
def test_numbers_may_be_negative_or_have_exponents(literal: str, value: float) -> None:
    node = parse_filter(f"metrics.x >= {literal}")
    assert isinstance(node, Comparison) and node.value == value


def test_strings_take_either_quote_and_a_doubled_quote_stands_for_itself() -> None:
    assert parse_filter("params.a = 'it''s'") == Comparison("param", "a", "=", "it's", 0)
    assert parse_filter('params.a = "say ""hi"""') == Comparison("param", "a", "=", 'say "hi"', 0)
    assert parse_filter("params.a IN ('x', \"y\",)") == Comparison("param", "a", "IN", ("x", "y"), 0)


def test_keywords_ignore_case() -> None:
    node = parse_filter("params.a like 'x' Or params.b iLike 'y' aNd params.c not in ('z') and params.d is not null")
    assert isinstance(node, BoolOp) and node.op == "OR"
    assert [c.op for c in node.children[1].children] == ["ILIKE", "NOT IN", "IS NOT NULL"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("filter_string", "detail"),
    [
        ("metrics.acc >> 1", "unexpected token '>>' at position 12"),
        ("metrics.acc == 1", "unexpected token '==' at position 12"),
        ("metrics.acc > ", "unexpected token the end of the input; expected a number or a quoted string"),
        ("metrics.acc > 'high'", "'metrics.acc' is numeric: expected a number, found ''high'' at position 14"),
        ("params.lr = 0.1", "'params.lr' holds strings: quote the value"),
        ("params.lr > '1'", "'>' at position 10 cannot compare 'params.lr'"),
        ("metrics.acc LIKE '1%'", "'LIKE' at position 12 cannot compare 'metrics.acc'"),
        ("status IS NULL", "'IS NULL' at position 7 cannot compare 'status'"),
        ("start_time IN (1, 2)", "'IN' at position 11 cannot compare 'start_time'"),
        ("(metrics.acc > 1", "expected ')' to close the '(' at position 0"),
        ("metrics.acc > 1)", "unexpected token ')' at position 15; expected AND, OR or the end of the filter"),
        ("metrics.acc > 1 AND", "unexpected token the end of the input; expected a comparison"),
        ("metrics.acc > 1 metrics.b > 2", "unexpected token 'metrics.b' at position 16"),
        ("foo.bar = 'x'", "unknown identifier 'foo.bar' at position 0"),
        ("acc > 1", "unknown attribute 'acc' at position 0; valid attributes are artifact_uri"),
        ("datasets.context = 'train'", "unknown dataset field 'datasets.context'"),
        ("tags.x = 'unterminated", "unterminated ' quote starting at position 9"),
        ("metrics.acc > 1 # comment", "unexpected character '#' at position 16"),
        ("metrics.acc > 1e", "malformed number at position 14"),
        ("params.lr = 'a\x00b'", "NUL character at position 14"),
        ("metrics.acc > - 1", "malformed number at position 14"),
        ("params.lr NOT LIKE 'x'", "expected IN after NOT"),
        ("params.lr IN ()", "unexpected token ')' at position 14; expected a number or a quoted string"),
        ("params.lr IN 'x'", "expected '(' and a list of quoted values"),
        ("params.lr IS 'x'", "expected NULL"),
        ("metrics. > 1", "expected a key after 'metrics.' at position 0"),
        ("'x' = params.lr", "unexpected token ''x'' at position 0; expected a comparison"),
        ("(" * 60 + "metrics.a > 1" + ")" * 60, "parentheses nested deeper than 50"),
        (" OR ".join(["metrics.a > 1"] * 101), "more than 100 comparisons"),
    ],
)
def test_a_bad_filter_says_what_is_wrong_and_where(filter_string: str, detail: str) -> None:
    with pytest.raises(SearchError) as caught:
        parse_filter(filter_string)
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert caught.value.message.startswith(f"Invalid filter '{filter_string}': ")
    assert detail in caught.value.message


def test_deep_nesting_is_a_search_error_not_a_crash() -> None:
    with pytest.raises(SearchError):
        parse_filter("(" * 10_000 + "metrics.a > 1" + ")" * 10_000)


def test_random_and_mangled_filters_give_results_or_a_search_error_and_nothing_else(
    editor: Any, zoo: dict[str, Run]
) -> None:
    atoms = ["metrics.acc > 0.5", "params.lr = '0.1'", "tags.team LIKE 'v%'", "status != 'RUNNING'",
             "start_time >= -1e3", "params.model IN ('a', 'b')", "tags.x IS NULL", "run_id NOT IN ('x')"]  # fmt: skip
    junk = ["(", ")", "AND", "OR", "NOT", "IN", "IS", "=", ">", "'", "`", '"', ",", ".", "%", "metrics.", "1e", "-"]
    rng = random.Random(20240611)
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(300):
        words: list[str] = []
        for i in range(rng.randint(1, 4)):
            words += [rng.choice(["AND", "OR"])] if i else []
            words += ["(", rng.choice(atoms), ")"] if rng.random() < 0.3 else [rng.choice(atoms)]
        text = " ".join(words)
        if rng.random() < 0.5:  # mangle: insert or delete a few characters
            position = rng.randrange(len(text))
            if rng.random() < 0.5:
                text = text[:position] + rng.choice(junk) + text[position:]
            else:
                text = text[:position] + text[position + rng.randint(1, 3) :]
        try:
            found = list(runs_queryset(editor, experiment_ids(zoo), text))  # whatever parses also runs
        except SearchError:
            outcomes["refused"] += 1
            continue
        outcomes["parsed"] += 1
        assert len(found) <= 5
    assert outcomes["parsed"] > 50 and outcomes["refused"] > 50


# Comparators -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        # metrics compare the latest value; NaN matches only !=; a run without the metric never matches
        ("metrics.acc = 0.9", {"alpha"}),
        ("metrics.acc != 0.9", {"beta", "gamma", "epsilon"}),
        ("metrics.acc > 0.7", {"alpha"}),
        ("metrics.acc >= 0.7", {"alpha", "beta"}),
        ("metrics.acc < 0.5", {"epsilon"}),
        ("metrics.acc <= 0.7", {"beta", "epsilon"}),
        ("metrics.acc = 0", {"epsilon"}),
        ("metrics.acc IS NULL", {"delta"}),
        ("metrics.acc IS NOT NULL", {"alpha", "beta", "gamma", "epsilon"}),
        ("metrics.loss > 1e308", {"beta"}),
        ("metrics.loss < -1E308", {"gamma"}),
        ("metrics.loss >= -1.5e+3", {"alpha", "beta", "epsilon"}),
        ("metric.loss != 0.3", {"beta", "gamma", "epsilon"}),
        # params
        ("params.lr = '0.1'", {"alpha", "gamma"}),
        ("params.lr != '0.1'", {"beta"}),
        ("params.model LIKE 'cnn%'", {"alpha", "epsilon"}),
        ("params.model ILIKE 'cnn%'", {"alpha", "gamma", "epsilon"}),
        ("params.model LIKE 'cn_'", {"alpha"}),
        ("params.model LIKE 'cnn\\_%'", {"epsilon"}),
        ("params.model LIKE '%N'", {"gamma"}),
        ("params.model IN ('rf', 'CNN')", {"beta", "gamma"}),
        ("params.model NOT IN ('rf', 'CNN')", {"alpha", "epsilon"}),
        ("params.lr IS NULL", {"delta", "epsilon"}),
        ("params.lr IS NOT NULL", {"alpha", "beta", "gamma"}),
        ('param.lr = "0.01"', {"beta"}),
        ("params.`lr` = '0.01'", {"beta"}),
        ("params.missing = 'x'", set()),
        ("params.missing != 'x'", set()),
        # tags
        ("tags.team = 'vision'", {"alpha", "gamma"}),
        ("tags.team != 'vision'", {"beta", "delta"}),
        ("tags.team LIKE 'V%'", {"delta"}),
        ("tags.team ILIKE 'vision'", {"alpha", "gamma", "delta"}),
        ("tags.team IN ('nlp', 'Vision')", {"beta", "delta"}),
        ("tags.`my tag` = 'x'", {"alpha"}),
        ("tags.\"my tag\" != 'y'", {"alpha"}),
        ("tag.stage IS NULL", {"delta", "epsilon"}),
        ("tags.\"mlflow.runName\" = 'beta'", {"beta"}),
        ("tags.mlflow.runName LIKE '%ta'", {"beta", "delta"}),
        ("tags.mlflow.user = 'bob'", {"delta"}),
        # attributes
        ("attributes.run_name = 'alpha'", {"alpha"}),
        ("run_name != 'alpha'", {"beta", "gamma", "delta", "epsilon"}),
        ("attributes.run_name LIKE '%a'", {"alpha", "beta", "gamma", "delta"}),
        ("attributes.run_name ILIKE 'ALPHA'", {"alpha"}),
        ("attributes.run_name IN ('alpha', 'beta')", {"alpha", "beta"}),
        ("attributes.status = 'FINISHED'", {"alpha"}),
        ("attributes.status != 'RUNNING'", {"alpha", "beta"}),
        ("attributes.status NOT IN ('RUNNING', 'FAILED')", {"alpha"}),
        ("attributes.user_id = 'bob'", {"delta"}),
        ("attributes.artifact_uri LIKE 'mlflow-artifacts:/%'", {"alpha", "beta", "gamma", "delta", "epsilon"}),
        ("attributes.lifecycle_stage = 'active'", {"alpha", "beta", "gamma", "delta", "epsilon"}),
        (f"attributes.start_time = {T0 + 3000}", {"gamma"}),
        (f"attributes.start_time != {T0 + 3000}", {"alpha", "beta", "delta", "epsilon"}),
        (f"attributes.start_time > {T0 + 3000}", {"delta", "epsilon"}),
        (f"attributes.start_time >= {T0 + 3000}", {"gamma", "delta", "epsilon"}),
        (f"attributes.start_time < {T0 + 2000}", {"alpha"}),
        (f"attributes.start_time <= {T0 + 2000}", {"alpha", "beta"}),
        (f"attributes.start_time >= {T0 + 2999.5}", {"gamma", "delta", "epsilon"}),
        (f"created > {T0 + 4000}", {"epsilon"}),
        (f"attributes.end_time < {T0 + 15_000}", {"alpha"}),
        (f"attributes.end_time != {T0 + 10_000}", {"beta"}),
        ("attributes.end_time IS NULL", {"gamma", "delta", "epsilon"}),
        ("attributes.start_time > 99999999999999999999999", set()),
        ("attributes.start_time < " + "9" * 5000, {"alpha", "beta", "gamma", "delta", "epsilon"}),
    ],
)
def test_every_comparator_works_for_each_identifier_kind(
    editor: Any, zoo: dict[str, Run], filter_string: str, expected: set[str]
) -> None:
    assert set(names(editor, zoo, filter_string)) == expected


def test_run_ids_can_be_matched_one_by_one_or_in_a_list(editor: Any, zoo: dict[str, Run]) -> None:
    alpha, beta = zoo["alpha"].run_uuid, zoo["beta"].run_uuid
    assert names(editor, zoo, f"attributes.run_id = '{alpha}'") == ["alpha"]
    assert names(editor, zoo, f"attributes.run_id IN ('{alpha}', '{beta}')") == ["beta", "alpha"]
    assert names(editor, zoo, f"run_id NOT IN ('{alpha}', '{beta}')") == ["epsilon", "delta", "gamma"]


def test_datasets_can_be_matched_by_name_and_digest(editor: Any, zoo: dict[str, Run]) -> None:
    services.log_inputs(zoo["beta"], [{"dataset": {"name": "mnist", "digest": "abc123", "source_type": "local"}}])
    assert names(editor, zoo, "datasets.name = 'mnist'") == ["beta"]
    assert names(editor, zoo, "dataset.digest LIKE 'abc%' AND datasets.name IN ('mnist', 'cifar')") == ["beta"]
    assert names(editor, zoo, "datasets.name != 'mnist'") == []


def test_like_on_either_side_of_an_escape_matches_literal_percent_and_underscore(editor: Any) -> None:
    experiment = ExperimentFactory(owner=editor)
    for value in ["50%", "500", "a_b", "axb", "a\\b"]:
        RunFactory(experiment=experiment, run_name=value, params={"p": value})
    found = {
        pattern: {r.name for r in runs_queryset(editor, [str(experiment.pk)], f"params.p LIKE '{pattern}'")}
        for pattern in ["50\\%", "50%", "a\\_b", "a_b", "a\\\\b", "a*b", "a[_]b"]
    }
    assert found == {
        "50\\%": {"50%"},
        "50%": {"50%", "500"},
        "a\\_b": {"a_b"},
        "a_b": {"a_b", "axb", "a\\b"},
        "a\\\\b": {"a\\b"},
        "a*b": set(),  # GLOB's wildcards are literals here
        "a[_]b": set(),
    }


# OR, AND and parentheses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("params.model = 'rf' OR metrics.acc > 0.8", {"alpha", "beta"}),
        ("tags.team = 'vision' AND metrics.acc > 0.8 OR params.model = 'rf'", {"alpha", "beta"}),
        ("params.model = 'rf' OR tags.team = 'vision' AND metrics.acc > 0.8", {"alpha", "beta"}),
        ("(params.model = 'rf' OR tags.team = 'vision') AND metrics.acc > 0.8", {"alpha"}),
        ("tags.team = 'vision' AND (metrics.acc > 0.8 OR params.model = 'rf')", {"alpha"}),
        (
            "((tags.team = 'nlp' or (params.lr = '0.1' and metrics.acc > 0.8)) and status != 'KILLED')",
            {"alpha", "beta"},
        ),
        ("params.lr IS NULL or params.lr = '0.01'", {"beta", "delta", "epsilon"}),
        ("metrics.acc != 0.9 or metrics.acc = 0.9", {"alpha", "beta", "gamma", "epsilon"}),
        ("(((run_name = 'delta')))", {"delta"}),
    ],
)
def test_or_and_nested_parentheses_follow_normal_precedence(
    editor: Any, zoo: dict[str, Run], filter_string: str, expected: set[str]
) -> None:
    assert set(names(editor, zoo, filter_string)) == expected


# Agreement with MLflow's reference implementation ------------------------------------------------


def as_mlflow_run(run: Run) -> Any:
    from mlflow.entities import Metric, Param, RunData, RunInfo, RunTag
    from mlflow.entities import Run as MlflowRun

    info = RunInfo(run.run_uuid, str(run.experiment_id), run.user_id, run.status, run.start_time, run.end_time,
                   run.lifecycle_stage, run.artifact_uri, run.name)  # fmt: skip
    data = RunData(
        metrics=[
            Metric(m.key, math.nan if m.is_nan else m.value, m.timestamp, m.step) for m in run.latest_metrics.all()
        ],
        params=[Param(p.key, p.value) for p in run.params.all()],
        tags=[RunTag(t.key, t.value) for t in run.tags.all()],
    )
    return MlflowRun(info, data)


MLFLOW_FILTERS = [
    "metrics.acc > 0.5",
    "metrics.acc != 0.7",
    "metrics.acc = 0",
    "metrics.loss > 1e308",
    "metrics.loss <= -1E308",
    "params.lr = '0.1'",
    "params.lr != '0.1'",
    "params.model LIKE 'cnn%'",
    "params.model ILIKE 'CNN%'",
    "params.model LIKE 'cn_'",
    "tags.team = 'vision'",
    "tags.team ILIKE 'vision'",
    "tags.\"my tag\" = 'x'",
    "tags.`my tag` != 'y'",
    "attributes.status = 'FINISHED'",
    "attributes.status != 'FINISHED'",
    "attributes.run_name LIKE '%a'",
    f"attributes.start_time >= {T0 + 3000}",
    f"attributes.end_time < {T0 + 15_000}",
    f"attributes.end_time != {T0 + 10_000}",
    f"created > {T0 + 2000}",
    "attributes.user_id = 'bob'",
    "params.lr IS NULL",
    "tags.stage IS NOT NULL",
    "metrics.acc > 0.1 and params.model = 'cnn'",
    "attribute.run_name = 'gamma' AND metrics.acc != 1",
]

MLFLOW_ORDERS = [
    [],
    ["metrics.acc"],
    ["metrics.acc DESC"],
    ["metrics.loss DESC"],
    ["params.lr"],
    ["params.lr DESC", "metrics.loss"],
    ["tags.stage DESC"],
    ["attributes.end_time"],
    ["attributes.end_time DESC"],
    ["attributes.run_name"],
    ["start_time ASC"],
    ["params.model ASC", "attributes.start_time DESC"],
]


def test_filters_match_what_mlflow_itself_matches(editor: Any, zoo: dict[str, Run]) -> None:
    from mlflow.utils.search_utils import SearchUtils

    runs = [as_mlflow_run(r) for r in Run.objects.filter(pk__in=[r.pk for r in zoo.values()])]
    for filter_string in MLFLOW_FILTERS:
        expected = {r.info.run_name for r in SearchUtils.filter(runs, filter_string)}
        assert set(names(editor, zoo, filter_string)) == expected, filter_string


def test_orders_match_what_mlflow_itself_produces(editor: Any, zoo: dict[str, Run]) -> None:
    from mlflow.utils.search_utils import SearchUtils

    runs = [as_mlflow_run(r) for r in Run.objects.filter(pk__in=[r.pk for r in zoo.values()])]
    for order_by in MLFLOW_ORDERS:
        expected = [r.info.run_name for r in SearchUtils.sort(runs, order_by)]
        assert names(editor, zoo, order_by=order_by) == expected, order_by


# View types --------------------------------------------------------------------------------------


def test_view_types_choose_active_deleted_or_all_runs(editor: Any, zoo: dict[str, Run]) -> None:
    services.set_run_lifecycle(zoo["gamma"], LifecycleStage.DELETED, actor=editor)
    assert names(editor, zoo) == ["epsilon", "delta", "beta", "alpha"]
    assert names(editor, zoo, view="DELETED_ONLY") == ["gamma"]
    assert names(editor, zoo, view="ALL") == ["epsilon", "delta", "gamma", "beta", "alpha"]
    assert names(editor, zoo, "attributes.lifecycle_stage = 'deleted'", view="all") == ["gamma"]


def test_an_unknown_view_type_is_a_search_error(editor: Any, zoo: dict[str, Run]) -> None:
    with pytest.raises(SearchError, match="Invalid view type 'SOME'"):
        names(editor, zoo, view="SOME")


def test_a_bad_experiment_id_gets_mlflows_message(editor: Any) -> None:
    with pytest.raises(SearchError) as caught:
        runs_queryset(editor, ["abc"])
    assert caught.value.message == "Invalid experiment ID 'abc'. Experiment ID must be a valid integer."
    with pytest.raises(SearchError, match="at most 10000 experiment IDs"):
        runs_queryset(editor, [str(i) for i in range(10_001)])


def test_runs_of_several_experiments_come_back_together_and_unknown_ids_match_nothing(editor: Any) -> None:
    first, second = ExperimentFactory(owner=editor), ExperimentFactory(owner=editor)
    a = RunFactory(experiment=first, start_time=T0 + 1)
    b = RunFactory(experiment=second, start_time=T0 + 2)
    found = runs_queryset(editor, [str(first.pk), str(second.pk), "987654"])
    assert [r.pk for r in found] == [b.pk, a.pk]
    assert list(runs_queryset(editor, [])) == []


# Ordering ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        ([], ["epsilon", "delta", "gamma", "beta", "alpha"]),
        (["metrics.acc"], ["epsilon", "beta", "alpha", "gamma", "delta"]),  # then NaN, then missing
        (["metrics.acc DESC"], ["alpha", "beta", "epsilon", "gamma", "delta"]),
        (["metrics.loss ASC"], ["gamma", "alpha", "epsilon", "beta", "delta"]),  # -inf first, +inf last
        (["params.lr"], ["beta", "gamma", "alpha", "epsilon", "delta"]),  # ties by start_time DESC
        (["params.lr DESC"], ["gamma", "alpha", "beta", "epsilon", "delta"]),
        (["tags.stage ASC"], ["beta", "alpha", "gamma", "epsilon", "delta"]),
        (["tags.stage DESC"], ["gamma", "alpha", "beta", "epsilon", "delta"]),
        (["attributes.end_time"], ["alpha", "beta", "epsilon", "delta", "gamma"]),
        (["attributes.end_time DESC"], ["beta", "alpha", "epsilon", "delta", "gamma"]),
        (["attributes.start_time ASC"], ["alpha", "beta", "gamma", "delta", "epsilon"]),
        (["created"], ["alpha", "beta", "gamma", "delta", "epsilon"]),
        (["attributes.run_name DESC"], ["gamma", "epsilon", "delta", "beta", "alpha"]),
        (["run_name"], ["alpha", "beta", "delta", "epsilon", "gamma"]),
        (["params.lr DESC", "metrics.acc ASC"], ["alpha", "gamma", "beta", "epsilon", "delta"]),
        (["metrics.`acc` desc"], ["alpha", "beta", "epsilon", "gamma", "delta"]),
    ],
)
def test_ordering_by_metric_param_tag_or_attribute_puts_missing_values_last(
    editor: Any, zoo: dict[str, Run], order_by: list[str], expected: list[str]
) -> None:
    assert names(editor, zoo, order_by=order_by) == expected
    queryset = runs_queryset(editor, experiment_ids(zoo), "", order_by)
    assert queryset.count() == 5  # the dashboard pages it, and exports it as values
    assert list(queryset.values_list("name", flat=True)) == expected


def test_ties_are_broken_by_run_id(editor: Any) -> None:
    experiment = ExperimentFactory(owner=editor)
    runs = [RunFactory(experiment=experiment, start_time=T0, metrics={"m": 1.0}) for _ in range(6)]
    for order_by in ([], ["metrics.m DESC"], ["attributes.start_time"]):
        found = [r.pk for r in runs_queryset(editor, [str(experiment.pk)], order_by=order_by)]
        assert found == sorted(r.pk for r in runs)


@pytest.mark.parametrize(
    ("order_by", "detail"),
    [
        (["metrics.acc sideways"], "Invalid order_by clause 'metrics.acc sideways': unexpected token 'sideways'"),
        (["metrics.acc DESC extra"], "unexpected token 'extra' at position 17; expected ASC, DESC or the end"),
        (["nonsense"], "unknown attribute 'nonsense'"),
        (["datasets.name"], "cannot order by 'datasets.name'"),
        (["DESC"], "expected a column such as metrics.acc"),
        (["metrics.acc", "metrics.acc DESC"], "`order_by` contains duplicate fields"),
        (["created", "start_time"], "`order_by` contains duplicate fields"),
        ([5], "Invalid order_by clause 5: must be a string"),
        ({"a": 1}, "for parameter 'order_by': must be a list"),
    ],
)
def test_a_bad_order_by_is_a_search_error(editor: Any, zoo: dict[str, Run], order_by: Any, detail: str) -> None:
    with pytest.raises(SearchError) as caught:
        names(editor, zoo, order_by=order_by)
    assert detail in caught.value.message


# Paging ------------------------------------------------------------------------------------------


@pytest.fixture
def crowd(editor: Any) -> Experiment:
    """23 runs with many ties: shared start times, repeated values, NaN and missing keys."""
    experiment = ExperimentFactory(owner=editor)
    for i in range(23):
        metrics: dict[str, Any] = {} if i % 6 == 0 else {"m": float(i % 5) if i % 7 else math.nan}
        params = {} if i % 4 == 0 else {"p": str(i % 3)}
        RunFactory(experiment=experiment, start_time=T0 + (i % 4) * 1000, metrics=metrics, params=params,
                   tags={"t": "even" if i % 2 == 0 else "odd"})  # fmt: skip
    return experiment


def page_through(user: Any, ids: list[str], size: int, **search: Any) -> list[str]:
    found: list[str] = []
    token = None
    for _ in range(100):
        defaults = {"filter_string": "", "order_by": [], "view_type": "ACTIVE_ONLY"}
        runs, token = search_runs(user, experiment_ids=ids, max_results=size, page_token=token, **defaults | search)
        assert len(runs) <= size
        found += [r.run_uuid for r in runs]
        if token is None:
            return found
        assert len(runs) == size
    raise AssertionError("paging did not end")


PAGING_ORDERS = [[], ["metrics.m"], ["metrics.m DESC"], ["params.p DESC", "metrics.m"], ["tags.t", "start_time"],
                 ["attributes.end_time DESC"], ["attributes.run_id DESC"], ["run_name"]]  # fmt: skip


@pytest.mark.parametrize("order_by", PAGING_ORDERS)
@pytest.mark.parametrize("size", [1, 4, 23, 50])
def test_keyset_paging_returns_every_run_exactly_once_in_order(
    editor: Any, crowd: Experiment, order_by: list[str], size: int
) -> None:
    ids = [str(crowd.pk)]
    found = page_through(editor, ids, size, order_by=order_by)
    assert found == [r.run_uuid for r in runs_queryset(editor, ids, order_by=order_by)]
    assert len(found) == len(set(found)) == 23


def test_keyset_paging_with_a_filter_returns_exactly_the_matching_runs(editor: Any, crowd: Experiment) -> None:
    ids = [str(crowd.pk)]
    filter_string = "metrics.m >= 2 OR (params.p = '0' AND tags.t = 'odd')"
    found = page_through(editor, ids, 3, filter_string=filter_string, order_by=["metrics.m DESC"])
    expected = [r.run_uuid for r in runs_queryset(editor, ids, filter_string, ["metrics.m DESC"])]
    assert found == expected and 0 < len(expected) < 23


def test_a_run_created_while_paging_does_not_shift_the_next_page(editor: Any, crowd: Experiment) -> None:
    ids = [str(crowd.pk)]
    everything = [r.run_uuid for r in runs_queryset(editor, ids)]
    first, token = search_runs(editor, experiment_ids=ids, filter_string="", order_by=[], max_results=5,
                               page_token=None, view_type="ACTIVE_ONLY")  # fmt: skip
    RunFactory(experiment=crowd, start_time=T0 + 10_000)  # sorts first, before the cursor
    second, _ = search_runs(editor, experiment_ids=ids, filter_string="", order_by=[], max_results=5,
                            page_token=token, view_type="ACTIVE_ONLY")  # fmt: skip
    assert [r.run_uuid for r in first + second] == everything[:10]


def b64(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


def b64_raw(signature: str, after: list[str]) -> str:
    """A token whose values are written as raw JSON text (json.dumps refuses 5000-digit integers)."""
    return base64.urlsafe_b64encode(f'{{"o": "{signature}", "after": [{", ".join(after)}]}}'.encode()).decode()


def real_token(user: Any, crowd: Experiment, order_by: list[str]) -> dict[str, Any]:
    _, token = search_runs(user, experiment_ids=[str(crowd.pk)], filter_string="", order_by=order_by,
                           max_results=2, page_token=None, view_type="ACTIVE_ONLY")  # fmt: skip
    assert token is not None
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(token))
    return decoded


@pytest.mark.parametrize(
    "make_token",
    [
        lambda real: "garbage",
        lambda real: "!!!!",
        lambda real: "eyJvIjo",  # truncated
        lambda real: b64([]),
        lambda real: b64({}),
        lambda real: b64("after"),
        lambda real: b64({"o": real["o"], "after": real["after"][:-1]}),
        lambda real: b64({"o": real["o"], "after": ["x", *real["after"][1:]]}),
        lambda real: b64({"o": real["o"], "after": [True, *real["after"][1:]]}),
        lambda real: b64({"o": real["o"], "after": [2**70, *real["after"][1:]]}),
        lambda real: b64({"o": real["o"], "after": [*real["after"][:-1], 7]}),
        lambda real: b64({"o": "0123456789abcdef", "after": real["after"]}),
        lambda real: base64.urlsafe_b64encode(b"[" * 100_000).decode(),
        lambda real: base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        lambda real: b64({"o": real["o"], "after": [*real["after"][:-1], "a\x00b"]}),
        lambda real: b64_raw(real["o"], ["9" * 5000] + [json.dumps(v) for v in real["after"][1:]]),
    ],
)
def test_a_garbage_page_token_is_a_search_error(editor: Any, crowd: Experiment, make_token: Any) -> None:
    token = make_token(real_token(editor, crowd, ["metrics.m"]))
    with pytest.raises(SearchError) as caught:
        search_runs(editor, experiment_ids=[str(crowd.pk)], filter_string="", order_by=["metrics.m"], max_results=2,
                    page_token=token, view_type="ACTIVE_ONLY")  # fmt: skip
    assert caught.value.message.startswith("Invalid page token")


def test_a_page_token_from_another_order_is_refused(editor: Any, crowd: Experiment) -> None:
    token = b64(real_token(editor, crowd, ["metrics.m"]))
    with pytest.raises(SearchError, match="different order_by"):
        search_runs(editor, experiment_ids=[str(crowd.pk)], filter_string="", order_by=["metrics.m DESC"],
                    max_results=2, page_token=token, view_type="ACTIVE_ONLY")  # fmt: skip


@pytest.mark.parametrize(
    ("max_results", "message"),
    [
        (0, "Invalid value 0 for parameter 'max_results' supplied. It must be a positive integer"),
        (-3, "Invalid value -3 for parameter 'max_results' supplied. It must be a positive integer"),
        (50_001, "Invalid value for request parameter max_results. It must be at most 50000, but got value 50001"),
    ],
)
def test_max_results_must_be_between_1_and_50000(editor: Any, max_results: int, message: str) -> None:
    with pytest.raises(SearchError) as caught:
        search_runs(editor, experiment_ids=["0"], filter_string="", order_by=[], max_results=max_results,
                    page_token=None, view_type="ACTIVE_ONLY")  # fmt: skip
    assert caught.value.message == message
    with pytest.raises(SearchError):
        search_experiments(editor, filter_string="", order_by=[], max_results=max_results, page_token=None,
                           view_type="ACTIVE_ONLY")  # fmt: skip


def test_max_results_of_50000_is_allowed(editor: Any, zoo: dict[str, Run]) -> None:
    runs, token = search_runs(editor, experiment_ids=experiment_ids(zoo), filter_string="", order_by=[],
                              max_results=50_000, page_token=None, view_type="ACTIVE_ONLY")  # fmt: skip
    assert len(runs) == 5 and token is None


# Permissions -------------------------------------------------------------------------------------


def test_a_user_without_permission_sees_no_runs_and_no_experiments(
    editor: Any, zoo: dict[str, Run], settings: Any, django_user_model: Any
) -> None:
    settings.TRACKING_DEFAULT_PERMISSION = "NO_PERMISSIONS"
    stranger = make_user(django_user_model, "sam", Role.EDITOR)
    assert names(stranger, zoo) == []
    experiments, _ = search_experiments(stranger, filter_string="name != 'Default'", order_by=[], max_results=100,
                                        page_token=None, view_type="ALL")  # fmt: skip
    assert experiments == []
    assert len(names(editor, zoo)) == 5  # the owner still sees them
    ExperimentPermission.objects.create(experiment=zoo["alpha"].experiment, user=stranger, level=Permission.READ)
    assert len(names(stranger, zoo)) == 5


def test_anonymous_and_inactive_users_see_nothing(zoo: dict[str, Run], outsider: Any) -> None:
    assert names(AnonymousUser(), zoo) == []
    assert names(outsider, zoo) == []


def test_with_the_default_read_permission_every_user_sees_every_run(
    zoo: dict[str, Run], viewer: Any, admin_user: Any
) -> None:
    assert len(names(viewer, zoo)) == len(names(admin_user, zoo)) == 5


# Query counts ------------------------------------------------------------------------------------


def make_full_runs(experiment: Experiment, count: int) -> None:
    for i in range(count):
        run = RunFactory(experiment=experiment, params={"lr": str(i), "layers": "3"}, tags={"team": "a"},
                         metrics={"acc": i / count, "loss": [1.0, 0.5]})  # fmt: skip
        services.log_inputs(run, [{"dataset": {"name": "d", "digest": f"x{i}", "source_type": "local"}}])


def test_search_runs_builds_json_for_100_runs_in_a_bounded_number_of_queries(
    editor: Any, django_assert_max_num_queries: Any
) -> None:
    experiment = ExperimentFactory(owner=editor)
    make_full_runs(experiment, 100)
    with django_assert_max_num_queries(5):  # role, two segments of the order, the details, the inputs
        runs, _ = search_runs(editor, experiment_ids=[str(experiment.pk)], filter_string="metrics.acc >= 0",
                              order_by=["metrics.acc DESC", "params.lr"], max_results=100, page_token=None,
                              view_type="ACTIVE_ONLY")  # fmt: skip
        payload = runs_json(runs)
    assert len(payload) == 100
    assert all(len(p["data"]["params"]) == 2 and len(p["inputs"]["dataset_inputs"]) == 1 for p in payload)


def test_a_page_without_dataset_inputs_reads_its_details_in_one_query(editor: Any) -> None:
    experiment = ExperimentFactory(owner=editor)
    runs = [RunFactory(experiment=experiment, params={"lr": "0.1"}, metrics={"acc": 0.5}) for _ in range(3)]
    with CaptureQueriesContext(connection) as queries:
        payload = runs_json(runs)
    assert len(queries) == 1
    assert [p["data"]["params"] for p in payload] == [[{"key": "lr", "value": "0.1"}]] * 3


def test_the_page_json_is_the_single_run_json_of_each_run(editor: Any) -> None:
    """The page's one query gives each run what `run_json` gives it from its prefetched relations:
    NaN and infinities, outputs, dataset inputs, a run with nothing."""
    experiment = ExperimentFactory(owner=editor)
    full = RunFactory(experiment=experiment, params={"lr": "0.1", "a": "x"}, tags={"team": "t", "b": "y"},
                      metrics={"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "loss": [1.0, 0.25]})  # fmt: skip
    services.log_inputs(full, [{"dataset": {"name": "d", "digest": "x1", "source_type": "local"},
                                "tags": [{"key": "mlflow.data.context", "value": "train"}]}])  # fmt: skip
    model = LoggedModel.objects.create(model_id="m-1", experiment=experiment, name="m", artifact_location="x")
    RunOutput.objects.create(run=full, model=model, step=3)
    empty = RunFactory(experiment=experiment)
    only_metric = RunFactory(experiment=experiment, metrics={"acc": 0.1})
    runs = [only_metric, full, empty]
    expected = [run_json(r) for r in Run.objects.filter(pk__in=[r.pk for r in runs]).prefetch_related(*RUN_PREFETCH)]
    by_id = {e["info"]["run_id"]: e for e in expected}
    page = runs_json(runs)
    assert [p["info"]["run_id"] for p in page] == [r.pk for r in runs]
    for got in page:
        want = by_id[got["info"]["run_id"]]
        assert got["info"] == want["info"]
        assert got["inputs"] == want["inputs"]
        assert got["outputs"] == want["outputs"]
        for part in ("metrics", "params", "tags"):  # get-run lists them by key, a page by when they came
            assert sorted(got["data"][part], key=str) == sorted(want["data"][part], key=str), part
    metrics = {m["key"]: m["value"] for m in by_id[full.pk]["data"]["metrics"]}
    assert metrics == {"nan": "NaN", "inf": "Infinity", "ninf": "-Infinity", "loss": 0.25}


def test_the_number_of_queries_does_not_grow_with_the_page(editor: Any) -> None:
    experiment = ExperimentFactory(owner=editor)
    make_full_runs(experiment, 30)

    def count(size: int) -> int:
        with CaptureQueriesContext(connection) as queries:
            runs, _ = search_runs(editor, experiment_ids=[str(experiment.pk)], filter_string="", order_by=[],
                                  max_results=size, page_token=None, view_type="ACTIVE_ONLY")  # fmt: skip
            runs_json(runs)
        return len(queries)

    count(1)  # the first search of a request also reads the user's role
    assert count(3) == count(30)


# Experiments -------------------------------------------------------------------------------------


@pytest.fixture
def shelf(editor: Any) -> dict[str, Experiment]:
    made = {
        "search-a": ExperimentFactory(name="search-a", owner=editor, tags={"team": "vision"}),
        "search-b": ExperimentFactory(name="search-b", owner=editor, tags={"team": "nlp"}),
        "search-c": ExperimentFactory(name="search-c", owner=editor),
        "other-d": ExperimentFactory(name="other-d", owner=editor, tags={"team": "Vision"}),
    }
    for offset, experiment in enumerate(made.values(), start=1):
        # Creation order a, b, c, d; last update order is the reverse.
        Experiment.objects.filter(pk=experiment.pk).update(creation_time=T0 + offset, last_update_time=T0 + 10 - offset)
    return made


def experiment_names(user: Any, filter_string: str = "", order_by: Any = None, view: str = "ACTIVE_ONLY") -> Any:
    found, token = search_experiments(user, filter_string=filter_string, order_by=order_by or [], max_results=1000,
                                      page_token=None, view_type=view)  # fmt: skip
    assert token is None
    return [e.name for e in found]


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("name LIKE 'search-%'", {"search-a", "search-b", "search-c"}),
        ("attributes.name = 'other-d'", {"other-d"}),
        ("name != 'other-d' AND name != 'Default'", {"search-a", "search-b", "search-c"}),
        ("name ILIKE 'SEARCH-_'", {"search-a", "search-b", "search-c"}),
        ("tags.team = 'vision'", {"search-a"}),
        ("tags.team ILIKE 'vision'", {"search-a", "other-d"}),
        ("tags.team != 'vision'", {"search-b", "other-d"}),
        ("tags.team IS NULL AND name LIKE '%-%'", {"search-c"}),
        ("tags.team IS NOT NULL", {"search-a", "search-b", "other-d"}),
        ("tags.team = 'nlp' OR name = 'other-d'", {"search-b", "other-d"}),
        ("(tags.team = 'vision' OR tags.team = 'nlp') AND name LIKE 'search%'", {"search-a", "search-b"}),
        (f"attributes.creation_time > {T0 + 2} AND creation_time <= {T0 + 4}", {"search-c", "other-d"}),
        (f"last_update_time >= {T0 + 8} and last_update_time < {T0 + 100}", {"search-a", "search-b"}),
    ],
)
def test_search_experiments_filters_on_name_tags_and_times(
    editor: Any, shelf: dict[str, Experiment], filter_string: str, expected: set[str]
) -> None:
    assert set(experiment_names(editor, filter_string)) == expected


def test_search_experiments_filters_on_experiment_ids(editor: Any, shelf: dict[str, Experiment]) -> None:
    a, b = shelf["search-a"].pk, shelf["search-b"].pk
    assert set(experiment_names(editor, f"experiment_id IN ('{a}', '{b}')")) == {"search-a", "search-b"}
    assert experiment_names(editor, f"attributes.experiment_id = '{a}'") == ["search-a"]
    with pytest.raises(SearchError, match="Invalid experiment ID 'x'"):
        experiment_names(editor, "experiment_id = 'x'")


@pytest.mark.parametrize(
    ("filter_string", "detail"),
    [
        ("metrics.acc > 1", "unknown identifier 'metrics.acc' at position 0"),
        ("params.lr = '1'", "unknown identifier 'params.lr'"),
        ("status = 'x'", "unknown attribute 'status' at position 0; valid attributes are creation_time, experiment_id"),
        ("creation_time LIKE '1%'", "cannot compare 'creation_time'"),
        ("name = 'x' OR", "expected a comparison"),
    ],
)
def test_search_experiments_rejects_what_experiments_do_not_have(editor: Any, filter_string: str, detail: str) -> None:
    with pytest.raises(SearchError) as caught:
        experiment_names(editor, filter_string)
    assert caught.value.message.startswith(f"Invalid filter '{filter_string}': ") and detail in caught.value.message


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        (None, ["other-d", "search-c", "search-b", "search-a"]),  # creation_time DESC
        (["name"], ["other-d", "search-a", "search-b", "search-c"]),
        (["name DESC"], ["search-c", "search-b", "search-a", "other-d"]),
        (["attributes.creation_time ASC"], ["search-a", "search-b", "search-c", "other-d"]),
        (["last_update_time DESC"], ["search-a", "search-b", "search-c", "other-d"]),
        (["experiment_id DESC"], ["other-d", "search-c", "search-b", "search-a"]),
    ],
)
def test_search_experiments_orders_by_name_id_and_times(
    editor: Any, shelf: dict[str, Experiment], order_by: Any, expected: list[str]
) -> None:
    assert experiment_names(editor, "name != 'Default'", order_by) == expected


def test_experiments_with_equal_creation_times_are_ordered_like_mlflow_orders_them(editor: Any) -> None:
    made = [ExperimentFactory(owner=editor) for _ in range(3)]
    Experiment.objects.filter(pk__in=[e.pk for e in made]).update(creation_time=T0)
    ids = sorted(e.pk for e in made)
    by_default, _ = search_experiments(editor, filter_string=f"creation_time = {T0}", order_by=[], max_results=10,
                                       page_token=None, view_type="ALL")  # fmt: skip
    assert [e.pk for e in by_default] == ids  # default: creation_time DESC, experiment_id ASC
    explicit, _ = search_experiments(editor, filter_string=f"creation_time = {T0}", order_by=["creation_time"],
                                     max_results=10, page_token=None, view_type="ALL")  # fmt: skip
    assert [e.pk for e in explicit] == ids[::-1]  # MLflow's tie-breaker: experiment_id DESC


def test_search_experiments_pages_with_tokens_and_prefetches_tags(
    editor: Any, shelf: dict[str, Experiment], django_assert_max_num_queries: Any
) -> None:
    seen: list[str] = []
    token = None
    while True:
        with django_assert_max_num_queries(3):
            page, token = search_experiments(editor, filter_string="", order_by=["name"], max_results=2,
                                             page_token=token, view_type="ACTIVE_ONLY")  # fmt: skip
            [experiment_json(e) for e in page]
        seen += [e.name for e in page]
        if token is None:
            break
    assert seen == ["Default", "other-d", "search-a", "search-b", "search-c"]


def test_a_runs_page_token_is_refused_by_search_experiments(editor: Any, crowd: Experiment) -> None:
    token = b64(real_token(editor, crowd, []))
    with pytest.raises(SearchError, match="Invalid page token"):
        search_experiments(editor, filter_string="", order_by=[], max_results=2, page_token=token,
                           view_type="ACTIVE_ONLY")  # fmt: skip


def test_search_experiments_view_types(editor: Any, shelf: dict[str, Experiment]) -> None:
    services.set_experiment_lifecycle(shelf["search-b"], LifecycleStage.DELETED, actor=editor)
    assert set(experiment_names(editor, "name LIKE 'search%'")) == {"search-a", "search-c"}
    assert experiment_names(editor, view="DELETED_ONLY") == ["search-b"]
    assert set(experiment_names(editor, "name LIKE 'search%'", view="ALL")) == {"search-a", "search-b", "search-c"}


def test_search_experiments_shows_only_readable_experiments(
    editor: Any, shelf: dict[str, Experiment], settings: Any, django_user_model: Any
) -> None:
    settings.TRACKING_DEFAULT_PERMISSION = "NO_PERMISSIONS"
    stranger = make_user(django_user_model, "sam", Role.EDITOR)
    ExperimentPermission.objects.create(experiment=shelf["search-b"], user=stranger, level=Permission.READ)
    assert experiment_names(stranger, "name != 'Default'") == ["search-b"]
    assert len(experiment_names(make_user(django_user_model, "root", Role.ADMIN))) == 5


# The MLflow endpoints ----------------------------------------------------------------------------


def post(client: Client, path: str, body: dict[str, Any]) -> Any:
    return client.post(API + path, json.dumps(body), content_type="application/json")


def test_the_runs_search_endpoint_pages_through_filtered_ordered_runs(editor: Any, zoo: dict[str, Run]) -> None:
    client = Client()
    client.force_login(editor)
    body: dict[str, Any] = {
        "experiment_ids": experiment_ids(zoo),
        "filter": "metrics.acc >= 0 OR (tags.team ILIKE 'vision' AND params.lr IS NULL)",
        "order_by": ["metrics.acc DESC"],
        "max_results": 2,
    }
    pages = []
    while True:
        response = post(client, "runs/search", body)
        assert response.status_code == 200
        data = response.json()
        pages.append([run["info"]["run_name"] for run in data["runs"]])
        if "next_page_token" not in data:
            break
        body["page_token"] = data["next_page_token"]
    assert pages == [["alpha", "beta"], ["epsilon", "delta"]]  # gamma's acc is NaN and it has an lr
    first = post(client, "runs/search", {**body, "page_token": None}).json()["runs"][0]
    assert {"key": "acc", "value": 0.9, "timestamp": T0 + 1000, "step": 0} in first["data"]["metrics"]


def test_a_bad_filter_is_a_400_with_invalid_parameter_value(editor: Any, zoo: dict[str, Run]) -> None:
    client = Client()
    client.force_login(editor)
    for body in (
        {"experiment_ids": experiment_ids(zoo), "filter": "metrics.acc >> 1"},
        {"experiment_ids": experiment_ids(zoo), "order_by": ["metrics.acc up"]},
        {"experiment_ids": experiment_ids(zoo), "page_token": "garbage"},
        {"experiment_ids": experiment_ids(zoo), "max_results": 50_001},
        {"experiment_ids": ["abc"]},
    ):
        response = post(client, "runs/search", body)
        assert response.status_code == 400, body
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    message = post(client, "runs/search", {"experiment_ids": ["0"], "filter": "metrics.acc >> 1"}).json()["message"]
    assert message.startswith("Invalid filter 'metrics.acc >> 1': unexpected token '>>' at position 12")


def test_the_experiments_search_endpoint_filters_and_pages(editor: Any, shelf: dict[str, Experiment]) -> None:
    client = Client()
    client.force_login(editor)
    body: dict[str, Any] = {"filter": "name LIKE 'search%' OR tags.team = 'Vision'", "order_by": ["name DESC"],
                            "max_results": 3}  # fmt: skip
    first = post(client, "experiments/search", body).json()
    second = post(client, "experiments/search", {**body, "page_token": first["next_page_token"]}).json()
    assert [e["name"] for e in first["experiments"]] == ["search-c", "search-b", "search-a"]
    assert [e["name"] for e in second["experiments"]] == ["other-d"] and "next_page_token" not in second
    assert second["experiments"][0]["tags"] == [{"key": "team", "value": "Vision"}]
    response = client.get(API + "experiments/search", {"filter": "name LIKE 'search%'", "order_by": "name"})
    assert [e["name"] for e in response.json()["experiments"]] == ["search-a", "search-b", "search-c"]
    bad = post(client, "experiments/search", {"filter": "metrics.x > 1"})
    assert bad.status_code == 400 and bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"


@pytest.mark.django_db(transaction=True)
def test_the_mlflow_client_searches_and_pages_through_the_portal(
    live_server: Any, editor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    from accounts.services import create_api_token

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", create_api_token(editor, "search").secret)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    experiment = ExperimentFactory(name="client-search", owner=editor)
    for i in range(5):
        RunFactory(experiment=experiment, run_name=f"r{i}", params={"model": "cnn" if i % 2 else "rf"},
                   metrics={"acc": i / 10})  # fmt: skip
    client = MlflowClient(tracking_uri=live_server.url)
    found, token = [], None
    while True:
        page = client.search_runs([str(experiment.pk)], "params.model = 'cnn' OR metrics.acc >= 0.4",
                                  ViewType.ACTIVE_ONLY, max_results=2, order_by=["metrics.acc DESC"],
                                  page_token=token)  # fmt: skip
        found += [r.info.run_name for r in page]
        token = page.token
        if not token:
            break
    assert found == ["r4", "r3", "r1"]
    experiments = client.search_experiments(filter_string="name LIKE 'client-%'", order_by=["name"])
    assert [e.name for e in experiments] == ["client-search"]


@pytest.mark.parametrize(
    "condition",
    ["metrics.m > 1", "metrics.m >= 0", "metrics.m != 2", "metrics.m = 0", "metrics.m < 3 and params.p = '1'",
     "params.p != '0'", "params.p IN ('1', '2')", "params.p LIKE '%1%'", "tags.t = 'odd'"],
)  # fmt: skip
@pytest.mark.parametrize("order_by", [["metrics.m DESC"], ["metrics.m"], ["params.p DESC", "metrics.m"], ["tags.t"]])
def test_a_filter_on_the_sort_key_finds_what_the_general_form_finds(
    editor: Any, crowd: Experiment, condition: str, order_by: list[str]
) -> None:
    """Top-level conditions on the first sort key test the joined row instead of an EXISTS; an OR
    that can never be true on its other side keeps the general form, for comparison."""
    ids = [str(crowd.pk)]
    fast = page_through(editor, ids, 4, filter_string=condition, order_by=order_by)
    general = page_through(editor, ids, 4, filter_string=f"({condition}) or run_name = 'no such run'",
                           order_by=order_by)  # fmt: skip
    assert fast == general
    assert fast == page_through(editor, ids, 100, filter_string=condition, order_by=order_by)


# Compiled first pages ----------------------------------------------------------------------------


@pytest.fixture
def run_compiles(monkeypatch: Any) -> list[str]:
    """The SQL the ORM compiled for queries of runs, from here on."""
    from django.db.models.sql.compiler import SQLCompiler

    compiled: list[str] = []
    as_sql = SQLCompiler.as_sql

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = as_sql(self, *args, **kwargs)
        if self.query.model is Run:
            compiled.append(result[0])
        return result

    monkeypatch.setattr(SQLCompiler, "as_sql", counting)
    return compiled


def first_page(user: Any, ids: list[str], filter_string: str, order_by: list[str], size: int = 10) -> list[str]:
    runs, _ = search_runs(user, experiment_ids=ids, filter_string=filter_string, order_by=order_by,
                          max_results=size, page_token=None, view_type="ACTIVE_ONLY")  # fmt: skip
    return [r.name for r in runs]


def orm_page(user: Any, ids: list[str], filter_string: str, order_by: list[str], size: int = 10) -> list[str]:
    return [r.name for r in runs_queryset(user, ids, filter_string, order_by)[:size]]


SAME_SHAPE_PAIRS = [  # the same shape of filter with other values, and (mostly) other results
    ("params.lr = '0.1'", "params.lr = '0.01'"),
    ("metrics.acc > 0.7", "metrics.acc > -1"),
    ("metrics.acc != 0.9 or tags.team = 'vision'", "metrics.acc != 0.7 or tags.team = 'nlp'"),
    ("params.model IN ('rf', 'CNN')", "params.model IN ('cnn', 'cnn_v2')"),
    ("params.model NOT IN ('rf', 'CNN')", "params.model NOT IN ('cnn', 'rf')"),
    (f"attributes.start_time > {T0 + 3000}", f"attributes.start_time > {T0 + 1500}"),
    (f"attributes.start_time >= {T0 + 2999.5}", f"attributes.start_time >= {T0 + 999.5}"),
    (
        "status = 'FINISHED' and (run_name = 'alpha' or run_name = 'beta')",
        "status = 'FAILED' and (run_name = 'alpha' or run_name = 'beta')",
    ),
    (f"attributes.end_time != {T0 + 10_000}", f"attributes.end_time != {T0 + 20_000}"),
    ("tags.stage IS NULL and metrics.acc < 0.5", "tags.stage IS NULL and metrics.acc < 1"),
    ("metrics.loss <= 0.3 and metrics.loss >= 0.3", "metrics.loss <= 0.5 and metrics.loss >= 0.3"),
    ("params.lr = '0.1' and params.model = '0.1'", "params.lr = '0.1' and params.model = 'cnn'"),  # equal literals
    ("metrics.loss > 1e309 or metrics.loss < -1e309", "metrics.loss > 0.4 or metrics.loss < 0.35"),  # infinities
    ("metrics.loss < 0.4", "metrics.loss < 1e309"),
    (f"attributes.start_time < {T0 + 1500.5}", "attributes.start_time < " + "9" * 400),
]
SAME_SHAPE_ORDERS = [[], ["metrics.acc DESC"], ["metrics.loss"], ["params.model"], ["tags.team DESC", "metrics.acc"],
                     ["attributes.end_time"]]  # fmt: skip


@pytest.mark.parametrize("order_by", SAME_SHAPE_ORDERS)
def test_a_kept_first_page_binds_each_searchs_own_values(
    editor: Any, zoo: dict[str, Run], order_by: list[str], run_compiles: list[str]
) -> None:
    """The second search of a shape runs the SQL compiled for the first, with its own values: the
    same runs as the ORM finds, and nothing compiled."""
    ids = experiment_ids(zoo)
    differing = 0
    for first, second in SAME_SHAPE_PAIRS:
        assert first_page(editor, ids, first, order_by) == orm_page(editor, ids, first, order_by)
        run_compiles.clear()
        found = first_page(editor, ids, second, order_by)
        assert run_compiles == [], second  # kept: nothing compiled
        assert found == orm_page(editor, ids, second, order_by), second
        every = [r.run_uuid for r in runs_queryset(editor, ids, second, order_by)]
        assert page_through(editor, ids, 2, filter_string=second, order_by=order_by) == every, second
        differing += found != orm_page(editor, ids, first, order_by)
    assert differing >= len(SAME_SHAPE_PAIRS) - 2  # the pairs do test the values, not one cached answer


def test_run_ids_bind_into_a_kept_first_page(editor: Any, zoo: dict[str, Run], run_compiles: list[str]) -> None:
    ids = experiment_ids(zoo)
    a, b, c = (zoo[name].run_uuid for name in ("alpha", "beta", "gamma"))
    assert first_page(editor, ids, f"run_id IN ('{a}', '{b}')", []) == ["beta", "alpha"]
    run_compiles.clear()
    assert first_page(editor, ids, f"run_id IN ('{c}', '{a}')", []) == ["gamma", "alpha"]
    assert first_page(editor, ids, f"run_id IN ('{c}', '{b}')", ["metrics.acc DESC"]) == ["beta", "gamma"]
    assert len(run_compiles) == 2 * 2  # the new order's two segments, each compiled twice to find the values


@pytest.mark.parametrize(
    "filter_string",
    ["params.model LIKE 'cnn%'", "tags.team ILIKE 'V%'", "params.model IN ('rf', 'rf', 'cnn')"],
)  # fmt: skip
def test_what_cannot_be_kept_is_compiled_on_every_search(
    editor: Any, zoo: dict[str, Run], run_compiles: list[str], filter_string: str
) -> None:
    """LIKE patterns are rewritten before they are bound and the ORM drops a repeated IN value: the
    ORM compiles these every time."""
    ids = experiment_ids(zoo)
    expected = orm_page(editor, ids, filter_string, ["metrics.acc"])
    assert first_page(editor, ids, filter_string, ["metrics.acc"]) == expected
    run_compiles.clear()
    assert first_page(editor, ids, filter_string, ["metrics.acc"]) == expected
    assert run_compiles  # compiled again


def test_a_kept_first_page_checks_permissions_when_it_runs(
    editor: Any, zoo: dict[str, Run], settings: Any, django_user_model: Any, run_compiles: list[str]
) -> None:
    settings.TRACKING_DEFAULT_PERMISSION = "NO_PERMISSIONS"
    ids = experiment_ids(zoo)
    stranger = make_user(django_user_model, "sam", Role.EDITOR)
    other = make_user(django_user_model, "oscar", Role.EDITOR)
    grant = ExperimentPermission.objects.create(experiment=zoo["alpha"].experiment, user=stranger,
                                                level=Permission.READ)  # fmt: skip
    assert first_page(stranger, ids, "params.lr = '0.1'", []) == ["gamma", "alpha"]
    assert first_page(other, ids, "params.lr = '0.01'", []) == []  # not the stranger's SQL
    run_compiles.clear()
    assert first_page(stranger, ids, "params.lr = '0.01'", []) == ["beta"]
    grant.delete()
    assert first_page(stranger, ids, "params.lr = '0.1'", []) == []  # the grants are read when it runs
    assert run_compiles == []
    assert first_page(editor, ids, "params.lr = '0.1'", []) == ["gamma", "alpha"]  # the owner


def test_the_kept_shapes_are_bounded(monkeypatch: Any) -> None:
    from experiments.search import compiled

    cache = compiled._Cache()
    monkeypatch.setattr(compiled, "MAX_SHAPES", 2)
    for key in "abc":
        cache.put(key, None)
    assert len(cache) == 2 and cache.get("a") is compiled.NOT_SEEN and cache.get("c") is None


def test_a_changed_literal_keeps_its_type_and_differs_for_each_index() -> None:
    from experiments.search.compiled import changed
    from experiments.search.grammar import INT64_MAX

    for value in [
        "",
        "a",
        0,
        -5,
        INT64_MAX,
        INT64_MAX - 1,
        0.0,
        -0.0,
        0.9,
        1.7e308,
        -1.7e308,
        5e-324,
        math.inf,
        -math.inf,
    ]:
        others = [changed(value, i) for i in range(4)]
        assert all(type(o) is type(value) and o != value for o in others), value
        assert len(set(others)) == 4, value
        assert all(-(2**63) <= o <= INT64_MAX for o in others if isinstance(o, int))
    assert changed(math.nan, 0) is changed(True, 0) is None


def test_a_kept_first_page_reads_only_as_many_rows_as_the_page_needs(editor: Any, zoo: dict[str, Run]) -> None:
    ids = experiment_ids(zoo)
    for size, filter_string in [(2, "metrics.loss != 12"), (2, "metrics.loss != 13"), (1, "metrics.loss != 14")]:
        with CaptureQueriesContext(connection) as queries:
            first_page(editor, ids, filter_string, ["metrics.acc"], size=size)
        searches = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('SELECT "experiments_run"')]
        assert len(searches) == 1 and searches[0].endswith(f"LIMIT {size + 1}"), searches


def test_a_kept_shape_is_kept_for_its_experiments_view_and_visibility(
    editor: Any, admin_user: Any, zoo: dict[str, Run], settings: Any, django_user_model: Any
) -> None:
    """The same filter for other experiments, another view type or a user who sees less is another
    shape: each finds its own runs."""
    ids = experiment_ids(zoo)
    other = ExperimentFactory(name="other", owner=editor)
    RunFactory(experiment=other, run_name="omega", params={"lr": "0.1"})
    Run.objects.filter(pk=zoo["alpha"].pk).update(lifecycle_stage=LifecycleStage.DELETED)
    assert first_page(editor, ids, "params.lr = '0.1'", []) == ["gamma"]
    assert first_page(editor, [str(other.pk)], "params.lr = '0.1'", []) == ["omega"]
    assert first_page(editor, [str(other.pk), *ids], "params.lr = '0.1'", []) == ["omega", "gamma"]
    runs, _ = search_runs(editor, experiment_ids=ids, filter_string="params.lr = '0.1'", order_by=[],
                          max_results=10, page_token=None, view_type="DELETED_ONLY")  # fmt: skip
    assert [r.name for r in runs] == ["alpha"]
    settings.TRACKING_DEFAULT_PERMISSION = "NO_PERMISSIONS"
    stranger = make_user(django_user_model, "sam", Role.EDITOR)
    assert first_page(admin_user, ids, "params.lr = '0.1'", []) == ["gamma"]  # sees everything
    assert first_page(stranger, ids, "params.lr = '0.1'", []) == []  # not the admin's SQL


@pytest.mark.parametrize(
    ("limit", "value", "ids_of"),
    [("MAX_IDS", 1, lambda zoo, other: [*experiment_ids(zoo), str(other.pk)]),
     ("MAX_LITERALS", 1, lambda zoo, other: experiment_ids(zoo)),
     ("MAX_SHAPE_TEXT", 50, lambda zoo, other: experiment_ids(zoo))],
)  # fmt: skip
def test_a_search_too_big_to_keep_is_compiled_every_time(
    editor: Any, zoo: dict[str, Run], run_compiles: list[str], monkeypatch: Any, limit: str, value: int, ids_of: Any
) -> None:
    from experiments.search import compiled

    monkeypatch.setattr(compiled, limit, value)
    ids = ids_of(zoo, ExperimentFactory(name="other", owner=editor))
    filter_string = "params.lr = '0.1' and tags.team = 'vision'"  # two values, a shape of over 50 characters
    for _ in range(2):
        run_compiles.clear()
        assert first_page(editor, ids, filter_string, []) == ["gamma", "alpha"]
        assert run_compiles
    assert len(compiled.CACHE) == 0


def test_a_kept_shape_holds_none_of_the_values_it_was_compiled_with(editor: Any, zoo: dict[str, Run]) -> None:
    from experiments.search.compiled import CACHE

    assert first_page(editor, experiment_ids(zoo), "tags.team = 'vision' and metrics.acc > 0.123456", []) == ["alpha"]
    (template,) = CACHE._items.values()
    assert template is not None
    assert "vision" not in template.params and 0.123456 not in template.params
