"""`edgematte bundle` / `verify`: hashes, self-test, OVMS layout, and refusal of tampered or truncated bundles."""
import json
import tarfile

import pytest

from edge_tiny import build_ir
from edgematte.edge.bundle import BundleError, make_bundle, verify_bundle
from edgematte.edge.cli import main


@pytest.fixture()
def irs(tmp_path):
    return [build_ir(tmp_path / "m", name="tiny", size=(48, 64)),
            build_ir(tmp_path / "m", name="tri", size=(32, 32), task="trimap")]


def _members(path):
    with tarfile.open(str(path), "r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def _rewrite(src, dst, change):
    """Copy bundle src to dst, passing each member's bytes through change(name, data) (None drops it)."""
    import io

    with tarfile.open(str(src), "r:gz") as old, tarfile.open(str(dst), "w:gz") as new:
        for member in old.getmembers():
            data = old.extractfile(member).read() if member.isfile() else None
            if data is not None:
                data = change(member.name, data)
                if data is None:
                    continue
                member.size = len(data)
                new.addfile(member, io.BytesIO(data))
            else:
                new.addfile(member)


def test_bundle_then_verify(tmp_path, irs, capsys):
    out = tmp_path / "box.tar.gz"
    assert main(["bundle", str(irs[0]), str(irs[1]), "-o", str(out)]) == 0
    names = set(_members(out))
    for name in ("box/manifest.json", "box/requirements.txt", "box/run.sh", "box/models/tiny/model.xml",
                 "box/models/tiny/model.bin", "box/models/tiny/card.json", "box/models/tri/model.xml",
                 "box/selftest/input.png", "box/selftest/tiny.png", "box/selftest/tri.png"):
        assert name in names, name
    capsys.readouterr()
    assert main(["verify", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ok  tiny" in printed and "ok  tri" in printed and "match the manifest" in printed
    result = verify_bundle(str(out))
    assert [m["name"] for m in result["models"]] == ["tiny", "tri"] and result["models"][0]["max_diff_levels"] <= 1


def test_bundle_requirements_name_this_edgematte(tmp_path, irs, capsys):
    """run.sh calls `edgematte`: requirements.txt pins this version first and says how to install its wheel."""
    from importlib.metadata import version

    out = tmp_path / "req.tar.gz"
    assert main(["bundle", str(irs[0]), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    with tarfile.open(str(out), "r:gz") as tar:
        text = tar.extractfile("req/requirements.txt").read().decode()
        manifest = json.loads(tar.extractfile("req/manifest.json").read())
        run_sh = tar.extractfile("req/run.sh").read().decode()
    pin = "edgematte=={}".format(version("edgematte"))
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == pin and "openvino>=2022.3" in lines and "exec edgematte mask" in run_sh
    assert "edgematte-{}-py3-none-any.whl".format(version("edgematte")) in text and "pip wheel" in text
    assert manifest["requirements"] == lines
    assert main(["verify", str(out)]) == 0


def test_ovms_layout(tmp_path, irs):
    out = tmp_path / "serve.tar.gz"
    manifest = make_bundle([str(irs[0])], str(out), ovms=True)
    names = set(_members(out))
    assert "serve/tiny/1/model.xml" in names and "serve/tiny/1/model.bin" in names and "serve/config.json" in names
    with tarfile.open(str(out), "r:gz") as tar:
        config = json.loads(tar.extractfile("serve/config.json").read())
    assert config["model_config_list"][0]["config"] == {"name": "tiny", "base_path": "/models/tiny"}
    assert manifest["layout"] == "ovms" and verify_bundle(str(out))["models"][0]["name"] == "tiny"


@pytest.mark.parametrize("case,message", [
    ("flip_bin", "does not match its sha256"),
    ("truncate_bin", "truncated or altered"),
    ("drop_card", "listed in the manifest but missing"),
    ("extra_file", "not in the manifest"),
    ("bad_selftest", "self-test of tiny"),
])
def test_tampered_bundles_are_refused(tmp_path, irs, capsys, case, message):
    good = tmp_path / "good.tar.gz"
    make_bundle([str(irs[0])], str(good))
    bad = tmp_path / "bad.tar.gz"

    def change(name, data):
        if case == "flip_bin" and name.endswith("model.bin"):
            return data[:-1] + bytes([data[-1] ^ 0xFF])
        if case == "truncate_bin" and name.endswith("model.bin"):
            return data[: len(data) // 2]
        if case == "drop_card" and name.endswith("card.json"):
            return None
        if case == "bad_selftest" and name.endswith("manifest.json"):
            manifest = json.loads(data)  # a self-test mask that no longer fits, with a matching hash
            return json.dumps(dict(manifest, selftest=dict(manifest["selftest"], tolerance=-1))).encode()
        return data

    _rewrite(good, bad, change)
    if case == "extra_file":
        import io

        with tarfile.open(str(good), "r:gz") as old, tarfile.open(str(bad), "w:gz") as new:
            for member in old.getmembers():
                new.addfile(member, old.extractfile(member) if member.isfile() else None)
            extra = tarfile.TarInfo("good/models/tiny/evil.sh")
            extra.size = 3
            new.addfile(extra, io.BytesIO(b"rm\n"))
    with pytest.raises(BundleError, match=message):
        verify_bundle(str(bad))
    capsys.readouterr()
    assert main(["verify", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.tar.gz" in err[0] and "Traceback" not in err[0]


def test_unreadable_or_escaping_bundles(tmp_path, irs):
    cut = tmp_path / "cut.tar.gz"
    make_bundle([str(irs[0])], str(tmp_path / "whole.tar.gz"))
    cut.write_bytes((tmp_path / "whole.tar.gz").read_bytes()[:200])
    with pytest.raises(BundleError, match="not a readable"):
        verify_bundle(str(cut))
    evil = tmp_path / "evil.tar.gz"
    import io

    with tarfile.open(str(evil), "w:gz") as tar:
        info = tarfile.TarInfo("box/../../escape.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(BundleError, match="refusing member"):
        verify_bundle(str(evil))
    assert not (tmp_path.parent / "escape.txt").exists()
    with pytest.raises(BundleError, match="ends in .tar.gz"):
        make_bundle([str(irs[0])], str(tmp_path / "x.zip"))
    with pytest.raises(BundleError, match="takes OpenVINO IRs"):
        make_bundle([str(tmp_path / "nope.onnx")], str(tmp_path / "y.tar.gz"))
    assert not (tmp_path / "y.tar.gz").exists()
