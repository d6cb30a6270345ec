"""Config loading: every shipped example loads; every kind of mistake names the file, key and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skyedge.config import ConfigError, interpolate_env, load_config
from skyedge.edge.config import EdgeConfig, load_edge_config

REPO = Path(__file__).resolve().parents[1]
EDGE_CONFIGS = sorted((REPO / "configs" / "edge").glob("*.yaml"))

GOOD = """\
site: la-palma
device: allsky-01
model:
  package: models/allsky-tiny
pipelines:
  - camera: allsky
    source:
      kind: directory
      path: /data/allsky
reporters:
  mqtt:
    host: localhost
"""


def write(tmp_path: Path, text: str, name: str = "edge.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_there_are_example_configs():
    assert len(EDGE_CONFIGS) >= 3


@pytest.mark.parametrize("path", EDGE_CONFIGS, ids=lambda p: p.name)
def test_every_shipped_edge_config_loads(path, monkeypatch):
    monkeypatch.setenv("SKYEDGE_MQTT_PASSWORD", "not-a-real-password")
    config = load_edge_config(path)
    assert isinstance(config, EdgeConfig)
    assert config.pipelines


def test_documented_defaults_match_the_schema():
    """configs/edge/allsky.yaml spells out every default: it must equal a minimal file's defaults."""
    documented = load_edge_config(REPO / "configs" / "edge" / "allsky.yaml")
    minimal = EdgeConfig.model_validate(
        {
            "site": documented.site,
            "device": documented.device,
            "model": {"package": str(documented.model.package)},
            "pipelines": [{"camera": "allsky", "source": {"kind": "directory", "path": "/data/allsky/incoming"}}],
            "reporters": {"mqtt": {}},
        }
    )
    assert documented == minimal
    # ... and writes every key out, so the example is the reference for each setting.
    text = (REPO / "configs" / "edge" / "allsky.yaml").read_text()

    def keys(node):
        if isinstance(node, dict):
            for k, v in node.items():
                yield k
                yield from keys(v)
        elif isinstance(node, list):
            for v in node:
                yield from keys(v)

    missing = sorted({k for k in keys(minimal.model_dump()) if f"{k}:" not in text})
    assert not missing, f"configs/edge/allsky.yaml does not show: {missing}"


@pytest.mark.parametrize(
    "old, new, expected",
    [
        (
            "  package: models/allsky-tiny",
            "  package: models/allsky-tiny\n  precison: fp16",
            "model.precison (line 5): unknown key; did you mean 'precision'?",
        ),
        (
            "      path: /data/allsky",
            "      path: 42",
            "pipelines[0].source.path (line 9): input is not a valid path for Path, got 42 (int)",
        ),
        (
            "    host: localhost",
            "    host: localhost\n    port: '1883'",
            "reporters.mqtt.port (line 13): input should be a valid integer, got '1883' (str)",
        ),
        (
            "    host: localhost",
            "    host: localhost\n    port: 70000",
            "reporters.mqtt.port (line 13): input should be less than or equal to 65535",
        ),
        ("      kind: directory", "      kind: dirctory", "pipelines[0].source.kind (line 7): unknown kind 'dirctory'"),
        ("device: allsky-01", "device: allsky/01", "device (line 2): string should match pattern"),
        ("  package: models/allsky-tiny\n", "  precision: fp16\n", "model.package (line 3): required key is missing"),
        (
            "  package: models/allsky-tiny\n",
            "",
            "model (line 3): is empty; expected a mapping of keys with at least: package",
        ),
        ("  mqtt:\n    host: localhost\n", "  {}\n", "reporters (line 10): configure at least one reporter"),
    ],
)
def test_bad_config_names_file_key_and_line(tmp_path, old, new, expected):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as err:
        load_edge_config(path)
    message = str(err.value)
    assert str(path) in message
    assert expected in message, message


def test_all_problems_are_reported_at_once(tmp_path):
    text = GOOD.replace("device: allsky-01", "device: allsky-01\nsitee: x").replace(
        "host: localhost", "hots: localhost"
    )
    with pytest.raises(ConfigError) as err:
        load_edge_config(write(tmp_path, text))
    assert len(err.value.problems) == 2
    assert any(p.startswith("sitee") for p in err.value.problems)
    assert any(p.startswith("reporters.mqtt.hots") and "did you mean 'host'" in p for p in err.value.problems)


def test_duplicate_camera_names_are_refused(tmp_path):
    text = GOOD.replace("reporters:", "  - camera: allsky\n    source:\n      kind: camera\n      uri: 0\nreporters:")
    with pytest.raises(ConfigError, match="repeated: allsky"):
        load_edge_config(write(tmp_path, text))


def test_duplicate_yaml_keys_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="duplicate key 'device'"):
        load_edge_config(write(tmp_path, GOOD + "device: other\n"))


def test_yaml_syntax_error_names_line(tmp_path):
    with pytest.raises(ConfigError, match=r"not valid YAML.*\n.*line 2"):
        load_edge_config(write(tmp_path, "site: [x\ndevice: y\n"))


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_edge_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="empty"):
        load_edge_config(write(tmp_path, ""))
    with pytest.raises(ConfigError, match="mapping"):
        load_edge_config(write(tmp_path, "- a\n- b\n"))


def test_env_interpolation_for_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("SKYEDGE_TEST_PW", "hunter2")
    monkeypatch.setenv("SKYEDGE_TEST_PORT", "8883")
    monkeypatch.setenv("SKYEDGE_TEST_HOST", "broker")
    text = GOOD.replace(
        "    host: localhost",
        "    host: ${SKYEDGE_TEST_HOST}.observatory.lan\n    port: ${SKYEDGE_TEST_PORT}\n"
        "    username: ${SKYEDGE_TEST_USER:-skyedge}\n    password: ${SKYEDGE_TEST_PW}",
    )
    config = load_edge_config(write(tmp_path, text))
    mqtt = config.reporters.mqtt
    assert mqtt.host == "broker.observatory.lan"
    assert mqtt.port == 8883  # a whole-value variable takes its YAML type
    assert mqtt.username == "skyedge"
    assert mqtt.password.get_secret_value() == "hunter2"
    # The secret never appears when the config is printed or logged.
    assert "hunter2" not in repr(config) and "hunter2" not in str(config)


def test_unset_env_var_names_key(tmp_path, monkeypatch):
    monkeypatch.delenv("SKYEDGE_TEST_UNSET", raising=False)
    text = GOOD.replace("    host: localhost", "    host: localhost\n    password: ${SKYEDGE_TEST_UNSET}")
    with pytest.raises(ConfigError) as err:
        load_edge_config(write(tmp_path, text))
    assert "reporters.mqtt.password (line 13): environment variable ${SKYEDGE_TEST_UNSET} is not set" in str(err.value)


@given(st.text().filter(lambda s: "${" not in s))
def test_interpolation_leaves_plain_strings_alone(text):
    assert interpolate_env({"k": [text]}, environ={}) == {"k": [text]}


def test_env_values_never_become_structures():
    assert interpolate_env("${X}", environ={"X": "[1, 2]"}) == "[1, 2]"
    assert interpolate_env("${X}", environ={"X": "true"}) is True


def test_generic_loader_works_for_any_schema(tmp_path):
    from skyedge.config import Schema

    class Tiny(Schema):
        name: str
        count: int = 1

    assert load_config(write(tmp_path, "name: a\n"), Tiny) == Tiny(name="a", count=1)
    with pytest.raises(ConfigError, match="count"):
        load_config(write(tmp_path, "name: a\ncount: 1.5\n"), Tiny)


def test_overrides_are_validated_like_the_file(tmp_path):
    path = write(tmp_path, GOOD)
    config = load_config(path, EdgeConfig, overrides=["backend.batch_size=16", "model.precision=int8"])
    assert config.backend.batch_size == 16 and config.model.precision == "int8"
    with pytest.raises(ConfigError, match="backend.batch_size"):
        load_config(path, EdgeConfig, overrides=["backend.batch_size=lots"])
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        load_config(path, EdgeConfig, overrides=["nonsense"])
