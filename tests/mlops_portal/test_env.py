from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from mlops_portal.env import env_bool, env_float, env_int, env_list, env_path, env_secret, env_str, env_url


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", True), ("true", True), ("YES", True), ("off", False), ("0", False)]
)
def test_env_bool_reads_the_usual_spellings(raw: str, expected: bool) -> None:
    assert env_bool("FLAG", not expected, {"FLAG": raw}) is expected


def test_env_bool_falls_back_to_the_default_when_unset() -> None:
    assert env_bool("FLAG", True, {}) is True


def test_env_bool_names_the_variable_when_the_value_is_nonsense() -> None:
    with pytest.raises(ImproperlyConfigured, match="FLAG must be a boolean"):
        env_bool("FLAG", False, {"FLAG": "maybe"})


def test_env_int_parses_and_checks_its_bounds() -> None:
    assert env_int("N", 5, {"N": " 42 "}) == 42
    assert env_int("N", 5, {}) == 5
    with pytest.raises(ImproperlyConfigured, match="N must be an integer"):
        env_int("N", 5, {"N": "4x"})
    with pytest.raises(ImproperlyConfigured, match="N must be at least 1, got 0"):
        env_int("N", 5, {"N": "0"}, minimum=1)
    with pytest.raises(ImproperlyConfigured, match="N must be at most 10, got 11"):
        env_int("N", 5, {"N": "11"}, maximum=10)


def test_env_float_parses_and_rejects_too_small_values() -> None:
    assert env_float("X", 1.0, {"X": "0.25"}) == 0.25
    with pytest.raises(ImproperlyConfigured, match="X must be a number"):
        env_float("X", 1.0, {"X": "fast"})
    with pytest.raises(ImproperlyConfigured, match=r"at least 1\.0"):
        env_float("X", 1.0, {"X": "0.5"}, minimum=1.0)


def test_env_list_splits_on_commas_and_drops_blanks() -> None:
    assert env_list("HOSTS", ["a"], {"HOSTS": "x.example, y.example,,"}) == ["x.example", "y.example"]
    assert env_list("HOSTS", ["a"], {}) == ["a"]
    assert env_list("HOSTS", ["a"], {"HOSTS": ""}) == []


def test_env_secret_prefers_the_file_named_by_the_file_variable(tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("from-file\n")
    assert env_secret("KEY", "", {"KEY": "from-env", "KEY_FILE": str(secret)}) == "from-file"
    assert env_secret("KEY", "", {"KEY": "from-env"}) == "from-env"


def test_env_secret_names_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ImproperlyConfigured, match="KEY_FILE points at"):
        env_secret("KEY", "", {"KEY_FILE": str(tmp_path / "missing")})


def test_env_url_checks_the_scheme() -> None:
    assert env_url("DB", "sqlite:///x", {"sqlite", "postgres"}, {"DB": "postgres://h/db"}) == "postgres://h/db"
    with pytest.raises(ImproperlyConfigured, match="DB must be a URL with scheme postgres, sqlite; got scheme 'mysql'"):
        env_url("DB", "", {"sqlite", "postgres"}, {"DB": "mysql://h/db"})


def test_env_str_and_env_path_use_defaults(tmp_path: Path) -> None:
    assert env_str("S", "d", {}) == "d"
    assert env_path("P", tmp_path, {}) == tmp_path
    assert env_path("P", tmp_path, {"P": str(tmp_path / "a" / ".." / "b")}) == tmp_path / "b"


def test_env_url_reads_a_url_with_a_password_from_a_file(tmp_path: Path) -> None:
    url_file = tmp_path / "db"
    url_file.write_text("postgres://u:secret@h/db\n")
    assert env_url("DB", "", {"postgres"}, {"DB_FILE": str(url_file)}) == "postgres://u:secret@h/db"
