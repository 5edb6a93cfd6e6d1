"""The app's options: parsed once from MONAI Label's ``conf``, bad values refused at start."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import APP_DIR, start_server

if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))  # the app's ``lib`` package, as MONAI Label imports it

from lib.options import OHIF_DIR_VARIABLE, AppOptions, OptionError  # noqa: E402


def test_defaults_are_filled_from_the_app_folder_and_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(OHIF_DIR_VARIABLE, str(tmp_path / "ohif"))
    options = AppOptions.from_conf({}, app_dir=tmp_path)
    assert options.model_dir == str(tmp_path / "model")
    assert options.ohif_dir == str(tmp_path / "ohif")
    assert (options.starter_minutes, options.starter_phantoms, options.retrain_every, options.retrain_minutes) == (20.0, 160, 5, 10.0)
    assert (options.dicomweb_list_seconds, options.upload_retry_seconds, options.max_upload_mb) == (10.0, 30.0, 64.0)
    assert options.max_upload_bytes == 64 * 1024 * 1024
    assert options.allowed_hosts == () and options.insecure_bind is False
    # the option wins over the environment
    assert AppOptions.from_conf({"ohif_dir": "/x"}, app_dir=tmp_path).ohif_dir == "/x"


def test_conf_strings_become_typed_values(tmp_path):
    token = tmp_path / "token"
    token.write_text("x" * 20)
    options = AppOptions.from_conf({
        "model_dir": str(tmp_path / "m"), "starter_minutes": "0.05", "starter_phantoms": "4", "retrain_every": "0",
        "allowed_origins": "https://a:1, https://b:2,", "insecure_bind": "Yes", "max_upload_mb": "3",
        "api_token_file": str(token), "server_mode": "true",  # MONAI Label's own option passes through
    })
    assert options.starter_minutes == 0.05 and options.starter_phantoms == 4 and options.retrain_every == 0
    assert options.allowed_origins == ("https://a:1", "https://b:2")
    assert options.insecure_bind is True and options.max_upload_bytes == 3 * 1024 * 1024
    assert options.api_token_file == str(token)


@pytest.mark.parametrize("name, value, problem", [
    ("retrain_every", "five", "not a whole number"),
    ("retrain_every", "2.5", "not a whole number"),
    ("starter_minutes", "-1", "must be at least 0"),
    ("max_upload_mb", "0", "must be above 0"),
    ("dicomweb_list_seconds", "nan", "must be at least 0"),
    ("insecure_bind", "maybe", "not true or false"),
    ("api_token_file", "/no/such/token", "no such file"),
])
def test_bad_values_are_refused_naming_the_option_and_its_default(name, value, problem):
    with pytest.raises(OptionError) as refused:
        AppOptions.from_conf({name: value})
    message = str(refused.value)
    assert message.startswith(f"--conf {name} {value!r} refused: {problem}")
    assert "default" in message


def test_the_server_refuses_to_start_with_a_bad_option(tmp_path):
    studies = tmp_path / "studies"
    studies.mkdir()
    with pytest.raises(RuntimeError) as refused:
        start_server(studies, tmp_path / "model", tmp_path / "server.log", conf={"retrain_every": "five"}, timeout=180)
    assert "--conf retrain_every 'five' refused: not a whole number" in str(refused.value)
