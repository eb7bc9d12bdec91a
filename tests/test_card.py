"""The model card round-trips through JSON and IR rt_info, and a malformed card is a clear error."""
import pytest

from edgematte.edge.card import ModelCard
from edgematte.edge.errors import ModelFileError


def _card() -> ModelCard:
    return ModelCard(name="t", task="alpha", arch="modnet", config={"width": 1.0}, input_size=[256, 256],
                     prune={"ratio": 0.5, "channels": {"a": [8, 16]}}, precision="FP16")


def test_json_roundtrip() -> None:
    card = _card()
    again = ModelCard.from_json(card.to_json())
    assert again == card
    assert again.normalisation.mean == card.normalisation.mean
    assert "alpha" in again.output["meaning"]


def test_rt_info_roundtrip(tmp_path) -> None:
    from edgematte.edge._ov import Core, ov

    param = ov.opset8.parameter([1, 3, 4, 4], ov.Type.f32, name="x")
    model = ov.Model([ov.opset8.relu(param)], [param], "tiny")
    _card().write_rt_info(model)
    ov.save_model(model, str(tmp_path / "m.xml"))
    loaded = Core().read_model(str(tmp_path / "m.xml"))
    assert ModelCard.read_rt_info(loaded) == _card()


def test_no_card_is_none() -> None:
    from edgematte.edge._ov import ov

    param = ov.opset8.parameter([1, 3], ov.Type.f32)
    model = ov.Model([ov.opset8.relu(param)], [param], "tiny")
    assert ModelCard.read_rt_info(model) is None


@pytest.mark.parametrize("text", ["{", "[]", '{"name": "x"}', '{"name": "x", "task": "dance", "arch": "a"}',
                                  '{"name": "x", "task": "alpha", "arch": "a", "normalisation": {"bogus": 1}}'])
def test_malformed_card_is_one_line_error(text: str) -> None:
    with pytest.raises(ModelFileError) as info:
        ModelCard.from_json(text, source="m.xml")
    assert "\n" not in str(info.value)
