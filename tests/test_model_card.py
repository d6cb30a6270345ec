"""The model card: round trip, refusal of bad and newer cards naming the field, no torch needed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cards import frame_card, sequence_card

from skyedge.model_card import (
    CARD_FILE,
    CARD_SCHEMA_VERSION,
    ModelCard,
    ModelCardError,
    card_json_schema,
    read_card,
    write_card,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("make", [frame_card, sequence_card], ids=["frame", "sequence"])
def test_round_trip(tmp_path, make):
    path = write_card(make(), tmp_path / "pkg")
    assert path == tmp_path / "pkg" / CARD_FILE
    card = read_card(tmp_path / "pkg")
    assert isinstance(card, ModelCard)
    assert card.classes == make()["classes"]
    # Reading the written file and writing it again is a fixed point.
    write_card(card, tmp_path / "again")
    assert json.loads((tmp_path / "again" / CARD_FILE).read_text()) == json.loads(path.read_text())


def test_tensor_lookup_by_role():
    card = ModelCard.model_validate(sequence_card())
    assert card.input("conditions").shape == ["batch", "time", 4]
    assert card.output("probabilities").shape[-1] == 7
    with pytest.raises(KeyError, match="no output with role 'min_distance'"):
        card.output("min_distance")


def _broken(mutate, base=frame_card):
    card = base()
    mutate(card)
    return card


@pytest.mark.parametrize(
    "mutate, base, expected",
    [
        (lambda c: c.update(task="image"), frame_card, "task: input should be 'frame' or 'sequence'"),
        (lambda c: c["classes"].append("cloudy"), frame_card, "classes: class names must be unique; repeated: cloudy"),
        (
            lambda c: c["preprocess"].update(mean=[0.1, 0.2]),
            frame_card,
            "preprocess: mean has 2 values for 1 channel(s)",
        ),
        (lambda c: c["preprocess"].update(std=[0.0]), frame_card, "preprocess.std[0]: input should be greater than 0"),
        (lambda c: c["inputs"][0].update(shape=["batch", 1, -64, 64]), frame_card, "inputs[0].shape[2]"),
        (
            lambda c: c["inputs"][0].update(layout="NHW"),
            frame_card,
            "inputs[0]: layout 'NHW' has 3 axes but shape has 4",
        ),
        (
            lambda c: c["outputs"][0].update(shape=["batch", 5]),
            frame_card,
            "output 'probabilities' has 5 class scores but the card lists 6 classes",
        ),
        (lambda c: c.pop("preprocess"), frame_card, "preprocess: required key is missing"),
        (lambda c: c.update(colour="mono"), frame_card, "colour: unknown key"),
        (
            lambda c: c["provenance"].update(created="2026-11-23T10:00:00"),
            frame_card,
            "provenance.created: must carry a timezone (UTC)",
        ),
        (lambda c: c["provenance"].update(config_sha256="xyz"), frame_card, "provenance.config_sha256"),
        (lambda c: c.pop("sequence"), sequence_card, "a sequence model needs the 'sequence' block"),
        (lambda c: c["sequence"].update(min_epochs=40), sequence_card, "sequence: min_epochs 40 exceeds max_epochs 30"),
        (
            lambda c: c["sequence"].update(conditions_std=[1.0]),
            sequence_card,
            "conditions_std has 1 values for 4 conditions",
        ),
        (
            lambda c: c["metric_head"].update(kind="mahalanobis"),
            sequence_card,
            "a mahalanobis head needs an output with role 'min_distance'",
        ),
    ],
)
def test_bad_card_names_the_field(tmp_path, mutate, base, expected):
    (tmp_path / CARD_FILE).write_text(json.dumps(_broken(mutate, base)))
    with pytest.raises(ModelCardError) as err:
        read_card(tmp_path)
    message = str(err.value)
    assert str(tmp_path / CARD_FILE) in message
    assert expected.lower() in message.lower(), message


def test_newer_schema_is_refused_with_upgrade_advice(tmp_path):
    card = frame_card()
    card["schema_version"] = CARD_SCHEMA_VERSION + 1
    card["something_new"] = {"only": "a newer reader knows"}
    (tmp_path / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelCardError, match=r"newer than this skyedge understands.*upgrade skyedge"):
        read_card(tmp_path)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"name": "x"}', "schema_version: expected an integer"),
    ],
)
def test_unreadable_cards(tmp_path, text, expected):
    (tmp_path / CARD_FILE).write_text(text)
    with pytest.raises(ModelCardError, match=expected):
        read_card(tmp_path)


def test_missing_card_says_what_is_wrong(tmp_path):
    with pytest.raises(ModelCardError, match="no model card here"):
        read_card(tmp_path)


def test_invalid_card_is_never_written(tmp_path):
    with pytest.raises(ModelCardError, match="classes"):
        write_card(_broken(lambda c: c.update(classes=["only-one"])), tmp_path)
    assert not (tmp_path / CARD_FILE).exists()


def test_shipped_json_schema_is_current():
    shipped = json.loads((REPO / "skyedge" / "schemas" / "model_card.schema.json").read_text())
    assert shipped == card_json_schema(), (
        "regenerate with: python -m skyedge.model_card > skyedge/schemas/model_card.schema.json"
    )


def test_card_and_edge_import_without_torch(tmp_path):
    write_card(frame_card(), tmp_path)
    code = (
        "import sys; import skyedge.edge, skyedge.edge.config; from skyedge.model_card import read_card; "
        f"read_card({str(tmp_path)!r}); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
