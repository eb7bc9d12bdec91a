"""Devices: an absent one is named with what is there, a compile failure names the device and OpenVINO's reason,
and AUTO falls back as OpenVINO documents (plain AUTO picks among what is there; an AUTO:a,b priority list moves
on past candidates that cannot be used). This box has only the CPU, so GPU, NPU and MYRIAD are absent here."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_tiny import build_ir
from edgematte.edge._ov import Core
from edgematte.edge.cli import main
from edgematte.edge.errors import DeviceError
from edgematte.edge.runtime import load_model

ABSENT = [d for d in ("GPU", "NPU", "MYRIAD") if d not in Core().available_devices]


@pytest.fixture(scope="module")
def ir(tmp_path_factory) -> Path:
    return build_ir(tmp_path_factory.mktemp("ir"), size=(16, 16))


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "photo.png"
    image = np.full((20, 30, 3), 40, np.uint8)
    image[:, 15:] = 220
    cv2.imwrite(str(path), image)
    return path


@pytest.mark.parametrize("device", ABSENT)
def test_absent_device_is_named_with_the_available_ones(device: str, ir: Path, photo: Path, tmp_path: Path,
                                                        capfd) -> None:
    code = main(["mask", str(photo), "-o", str(tmp_path / "out"), "-m", str(ir), "-d", device, "--no-progress"])
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1, lines
    assert "'{}' is not available here".format(device) in lines[0] and "available: CPU" in lines[0], lines
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif("GPU" not in ABSENT, reason="a GPU is present: no fallback to show")
@pytest.mark.parametrize("device", ["AUTO", "auto", "AUTO:GPU,CPU", "AUTO:GPU,NPU,CPU", "AUTO:-GPU", "AUTO:CPU"])
def test_auto_falls_back_to_cpu(device: str, ir: Path, photo: Path) -> None:
    cpu = load_model(str(ir), device="CPU")
    auto = load_model(str(ir), device=device)
    assert auto.device.startswith("AUTO") and "GPU" not in auto.device.replace("-GPU", "")
    assert auto.execution_devices() == ["CPU"]  # what AUTO compiled for, as OpenVINO reports it
    image = cv2.imread(str(photo))
    assert np.array_equal(auto.predict(image), cpu.predict(image))


@pytest.mark.skipif("GPU" not in ABSENT, reason="a GPU is present")
def test_auto_priority_list_through_the_cli(ir: Path, photo: Path, tmp_path: Path, capfd) -> None:
    code = main(["mask", str(photo), "-o", str(tmp_path / "out"), "-m", str(ir), "-d", "AUTO:GPU,CPU",
                 "--no-progress"])
    assert code == 0 and capfd.readouterr().err.strip() == ""
    assert (tmp_path / "out" / "photo.png").is_file()


@pytest.mark.skipif("GPU" not in ABSENT, reason="a GPU is present")
@pytest.mark.parametrize("device,named", [("AUTO:GPU", "'GPU'"), ("AUTO:GPU,NPU", "'GPU', 'NPU'"),
                                          ("MULTI:GPU,CPU", "'GPU'"), ("HETERO:GPU,CPU", "'GPU'")])
def test_lists_without_a_usable_device_name_it(device: str, named: str, ir: Path) -> None:
    """AUTO with no candidate left, and MULTI/HETERO (which use every device they list) with an absent one."""
    with pytest.raises(DeviceError) as info:
        load_model(str(ir), device=device)
    message = str(info.value)
    assert "\n" not in message and named in message and "available: CPU" in message, message


def test_compile_failure_names_device_and_reason(ir: Path) -> None:
    with pytest.raises(DeviceError) as info:
        load_model(str(ir), device="CPU", config={"INFERENCE_PRECISION_HINT": "bogus"})
    message = str(info.value)
    assert "\n" not in message and "device 'CPU' cannot compile" in message and str(ir) in message, message
    assert "INFERENCE_PRECISION_HINT" in message  # OpenVINO's reason, without its file:line noise


class _GpuThatFails:
    """A Core that lists a GPU whose compile fails the way OpenVINO reports it (several lines, source locations)."""

    def __init__(self) -> None:
        self.core = Core()
        self.available_devices = ["CPU", "GPU.0"]

    def read_model(self, *args):
        return self.core.read_model(*args)

    def compile_model(self, model, device, config):
        if "GPU" in device:
            raise RuntimeError("Exception from src/inference/src/cpp/core.cpp:109:\n"
                               "Exception from src/plugins/intel_gpu/src/plugin/program_builder.cpp:180:\n"
                               "[GPU] out of GPU resources: the model needs 7.9 GB, the device has 2.0 GB\n")
        return self.core.compile_model(model, device, config)


def test_device_that_fails_to_compile_is_named_with_the_reason(ir: Path) -> None:
    with pytest.raises(DeviceError) as info:
        load_model(str(ir), device="gpu", core=_GpuThatFails())
    message = str(info.value)
    assert "\n" not in message and "device 'GPU' cannot compile the model" in message, message
    assert message.endswith("[GPU] out of GPU resources: the model needs 7.9 GB, the device has 2.0 GB"), message
    assert load_model(str(ir), device="AUTO:CPU", core=_GpuThatFails()).predict(
        np.zeros((8, 8, 3), np.uint8)).shape == (8, 8)
