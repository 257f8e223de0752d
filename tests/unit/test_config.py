"""Settings: `hubbub.toml` < `HUBBUB_*` environment < overrides, typed and checked."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from hubbub.config import DEFAULT_NAMESPACES, NamespaceOptions, Settings, load_settings


@pytest.fixture(autouse=True)
def no_stray_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each test in an empty directory, so a `hubbub.toml` of the checkout is not read."""
    monkeypatch.chdir(tmp_path)


def write_toml(tmp_path: Path, text: str, name: str = "custom.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_with_no_file_environment_or_overrides_every_setting_has_its_default() -> None:
    settings = load_settings(environ={})
    assert settings == Settings()
    assert (settings.host, settings.port, settings.broker_url) == ("127.0.0.1", 8000, "memory://")
    assert settings.max_frame_bytes == 64 * 1024
    assert (settings.rate_per_second, settings.rate_burst) == (1000.0, 2000)
    assert (settings.bad_frame_limit, settings.bad_frame_window) == (20, 10.0)


def test_the_toml_file_sets_values(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'port = 9100\nhost = "0.0.0.0"\nrate_burst = 50\n')
    settings = load_settings(config_file=path, environ={})
    assert (settings.port, settings.host, settings.rate_burst) == (9100, "0.0.0.0", 50)


def test_hubbub_toml_in_the_working_directory_is_read_without_being_named(
    tmp_path: Path,
) -> None:
    write_toml(tmp_path, "port = 9200\n", name="hubbub.toml")
    assert load_settings(environ={}).port == 9200


def test_a_named_config_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_settings(config_file=tmp_path / "missing.toml", environ={})


def test_the_environment_beats_the_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'port = 9100\napi_key = "from-file"\n')
    settings = load_settings(
        config_file=path, environ={"HUBBUB_PORT": "9300", "HUBBUB_API_KEY": "from-env"}
    )
    assert (settings.port, settings.api_key) == (9300, "from-env")


def test_overrides_beat_the_environment_and_the_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "port = 9100\n")
    settings = load_settings(
        config_file=path, environ={"HUBBUB_PORT": "9300"}, overrides={"port": 9400}
    )
    assert settings.port == 9400


def test_an_override_of_none_leaves_the_lower_layers_alone(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "port = 9100\n")
    settings = load_settings(
        config_file=path,
        environ={"HUBBUB_HOST": "10.0.0.1"},
        overrides={"port": None, "host": None},
    )
    assert (settings.port, settings.host) == (9100, "10.0.0.1")


def test_environment_strings_are_typed_like_the_settings() -> None:
    settings = load_settings(
        environ={
            "HUBBUB_PORT": "9001",
            "HUBBUB_RATE_PER_SECOND": "12.5",
            "HUBBUB_MAX_FRAME_BYTES": "1024",
            "HUBBUB_HEARTBEAT_INTERVAL": "5",
        }
    )
    assert settings.port == 9001 and isinstance(settings.port, int)
    assert settings.rate_per_second == 12.5
    assert settings.max_frame_bytes == 1024
    assert settings.heartbeat_interval == 5.0


def test_the_section_15_environment_names_are_read() -> None:
    settings = load_settings(
        environ={
            "HUBBUB_HOST": "0.0.0.0",
            "HUBBUB_JWT_SECRET": "s3cret",
            "HUBBUB_API_KEY": "key",
            "HUBBUB_BROKER_URL": "redis://localhost:6379/0",
            "HUBBUB_DATABASE_URL": "sqlite:///x.db",
            "HUBBUB_DATA_DIR": "/var/lib/hubbub",
            "HUBBUB_NODE_ID": "n7",
        }
    )
    assert settings.host == "0.0.0.0"
    assert settings.jwt_secret == "s3cret" and settings.api_key == "key"
    assert settings.broker_url == "redis://localhost:6379/0"
    assert settings.database_url == "sqlite:///x.db"
    assert settings.data_dir == "/var/lib/hubbub"
    assert settings.node_id == "n7" and settings.node_name == "n7"


def test_variables_without_the_hubbub_prefix_are_ignored() -> None:
    assert load_settings(environ={"PORT": "1", "HUBBUBPORT": "2"}).port == 8000


def test_a_port_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match="port"):
        load_settings(environ={"HUBBUB_PORT": "eighty"})


def test_an_unknown_key_in_the_file_is_refused(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "prot = 9000\n")
    with pytest.raises(msgspec.ValidationError, match="prot"):
        load_settings(config_file=path, environ={})


@pytest.mark.parametrize(
    ("raw", "dev"),
    [("1", True), ("true", True), ("ON", True), ("yes", True), ("0", False), ("false", False)],
)
def test_hubbub_dev_is_read_as_a_boolean(raw: str, dev: bool) -> None:
    assert load_settings(environ={"HUBBUB_DEV": raw}).dev is dev


def test_allowed_origins_from_the_environment_are_a_comma_separated_list() -> None:
    settings = load_settings(
        environ={"HUBBUB_ALLOWED_ORIGINS": "https://a.example, https://b.example,,"}
    )
    assert settings.allowed_origins == ["https://a.example", "https://b.example"]


def test_namespaces_come_from_the_toml_file(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        """
[namespaces.dash]
conflation = true
keep_last_value = true
history_size = 10
history_ttl = 30.5
presence = false
publish = "server"
""",
    )
    settings = load_settings(config_file=path, environ={})
    dash = settings.namespace("dash")
    assert dash == NamespaceOptions(
        conflation=True,
        keep_last_value=True,
        history_size=10,
        history_ttl=30.5,
        presence=False,
        publish="server",
    )
    assert settings.namespace("other") == DEFAULT_NAMESPACES[""]


def test_a_namespace_with_an_unknown_option_is_refused(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[namespaces.dash]\nconflate = true\n")
    with pytest.raises(msgspec.ValidationError, match="conflate"):
        load_settings(config_file=path, environ={})


def test_a_namespace_with_an_unknown_policy_is_refused(tmp_path: Path) -> None:
    path = write_toml(tmp_path, '[namespaces.dash]\nsubscribe = "everyone"\n')
    with pytest.raises(msgspec.ValidationError, match="subscribe"):
        load_settings(config_file=path, environ={})


def test_the_reserved_namespaces_have_their_protocol_rules() -> None:
    settings = Settings()
    assert settings.namespace("user").subscribe == "owner"
    assert settings.namespace("user").publish == "server"
    assert settings.namespace("market").publish == "server"
    assert settings.namespace("chat").subscribe == "token"
    default = settings.namespace("")
    assert (default.history_size, default.history_ttl, default.presence) == (1000, 600.0, True)
    assert (default.subscribe, default.publish) == ("authenticated", "authenticated")
    assert not default.keep_last_value and not default.conflation


def test_a_configured_default_namespace_applies_to_unconfigured_namespaces(
    tmp_path: Path,
) -> None:
    path = write_toml(tmp_path, '[namespaces.""]\nhistory_size = 5\n')
    settings = load_settings(config_file=path, environ={})
    assert settings.namespace("news").history_size == 5
    assert settings.namespace("").history_size == 5


def test_tuning_a_reserved_namespace_keeps_its_access_rules(tmp_path: Path) -> None:
    # An operator who only shortens user history must not open everyone's `user:` channel.
    path = write_toml(tmp_path, "[namespaces.user]\nhistory_size = 50\n")
    user = load_settings(config_file=path, environ={}).namespace("user")
    assert user.history_size == 50
    assert (user.subscribe, user.publish) == ("owner", "server")


# -- development mode ---------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_development_mode_is_on_when_bound_to_loopback(host: str) -> None:
    assert Settings(host=host).dev_mode


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "example.com", ""])
def test_development_mode_is_off_when_bound_beyond_loopback(host: str) -> None:
    assert not Settings(host=host).dev_mode


def test_an_explicit_dev_flag_wins_over_the_bind_address() -> None:
    assert Settings(host="0.0.0.0", dev=True).dev_mode
    assert not Settings(host="127.0.0.1", dev=False).dev_mode


def test_hubbub_dev_false_turns_development_mode_off_on_loopback() -> None:
    assert not load_settings(environ={"HUBBUB_DEV": "false"}).dev_mode
