"""Runtime dependencies, collisions, wheel normalisation and quarantine records, without a
compile (builder/opbuild/{deps,collisions,reproducible,quarantine,prefixinfo}.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from builder.opbuild import quarantine
from builder.opbuild.collisions import prefix_collisions, spec_collisions, wheel_claims
from builder.opbuild.deps import (
    OpRequirement,
    check_requirements,
    describe,
    missing_module_hint,
    wheel_requirements,
)
from builder.opbuild.plan import source_pins
from builder.opbuild.prefixinfo import PrefixInfo, prefix_info
from builder.opbuild.records import OpOrigin
from builder.opbuild.reproducible import compare_wheels, normalize_wheel, prefix_maps

ENV = {"python_version": "3.11", "python_full_version": "3.11.9", "sys_platform": "linux",
       "platform_machine": "x86_64", "os_name": "posix", "implementation_name": "cpython",
       "platform_system": "Linux", "platform_python_implementation": "CPython",
       "implementation_version": "3.11.9", "platform_release": "", "platform_version": ""}


def _wheel(path: Path, files: dict[str, str], requires: tuple[str, ...] = ()) -> Path:
    name, version = path.name.split("-")[:2]
    meta = "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as zf:
        for member, text in files.items():
            zf.writestr(member, text)
        zf.writestr(f"{name}-{version}.dist-info/METADATA",
                    f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{meta}")
    return path


def test_requirements_are_checked_with_markers_and_named_with_their_pip_line(
        tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "detectron2-0.6-cp311-cp311-linux_x86_64.whl",
                   {"detectron2/_C.so": ""},
                   ("fvcore<0.1.6,>=0.1.5", "Pillow>=7.1", 'dataclasses; python_version < "3.7"',
                    'pytest; extra == "dev"'))
    reqs = [*wheel_requirements(wheel),
            OpRequirement(text="setuptools<82", why="the matrix pin: pkg_resources")]
    info = PrefixInfo(env=ENV, dists={"pillow": "10.2.0", "setuptools": "84.2.1"}, owners={})
    problems = check_requirements(reqs, info)
    assert [(p.requirement, p.found) for p in problems] == [
        ("fvcore<0.1.6,>=0.1.5", None), ("setuptools<82", "84.2.1")]
    text = describe("detectron2", problems, Path("envspecs/x.yaml"))
    assert "fvcore<0.1.6,>=0.1.5: not installed (required by the op's metadata" in text
    assert "setuptools<82: installed 84.2.1, which conflicts (required by the matrix pin" in text
    assert 'add to envspecs/x.yaml under pip: "fvcore<0.1.6,>=0.1.5", "setuptools<82"' in text


def test_an_import_error_names_the_requirement_behind_the_missing_module() -> None:
    reqs = [OpRequirement(text="fvcore>=0.1.5", why="the op's metadata (Requires-Dist)"),
            OpRequirement(text="setuptools<82", why="the matrix pin for detectron2")]
    out = "Traceback ...\nModuleNotFoundError: No module named 'fvcore'"
    assert missing_module_hint(out, reqs, None) == (
        "module 'fvcore' comes from fvcore, required by the op's metadata (Requires-Dist) as "
        "'fvcore>=0.1.5'; add pip: \"fvcore>=0.1.5\" to the spec")
    said = missing_module_hint("No module named 'pkg_resources'", reqs, None)
    assert "comes from setuptools, required by the matrix pin for detectron2" in said
    assert "declared nowhere" in missing_module_hint("No module named 'cv2.foo'", reqs, None)
    assert 'likely pip: "opencv-python"' in missing_module_hint("No module named 'cv2'", reqs,
                                                                None)
    assert missing_module_hint("undefined symbol: x", reqs, None) == ""


def test_the_matrix_pins_apply_to_a_detectron2_source_only() -> None:
    d2 = OpOrigin(source="d2", location="https://github.com/facebookresearch/detectron2",
                  commit="a" * 40)
    assert "setuptools<82" in [r.text for r in source_pins(d2, None)]
    assert all("pkg_resources" in r.why for r in source_pins(d2, None) if "setuptools" in r.text)
    assert source_pins(OpOrigin(source="m", location="/home/me/checkout"), None) == ()


def test_two_ops_with_one_module_collide_and_namespaces_do_not(tmp_path: Path) -> None:
    abi = "cpython-311-x86_64-linux-gnu"
    a = wheel_claims("MSDA", "source m2f (github.com/a)", _wheel(
        tmp_path / "MultiScaleDeformableAttention-1.0-cp311.whl",
        {f"MultiScaleDeformableAttention.{abi}.so": "a", "nvidia/x/lib.so": ""}))
    b = wheel_claims("MSDA2", "source gdino (github.com/b)", _wheel(
        tmp_path / "MultiScaleDeformableAttention-0.2-cp311.whl",
        {f"MultiScaleDeformableAttention.{abi}.so": "b", "nvidia/y/lib.so": ""}))
    c = wheel_claims("other", "source c", _wheel(tmp_path / "other-1-cp311.whl",
                                                  {"other/__init__.py": "", "nvidia/z.so": ""}))
    assert a.tops == ("MultiScaleDeformableAttention",) and c.tops == ("other",)
    assert spec_collisions([a, b, c]) == [
        "op MSDA (source m2f (github.com/a)) and op MSDA2 (source gdino (github.com/b)) both "
        "install MultiScaleDeformableAttention"]
    info = PrefixInfo(env=ENV, dists={"MultiScaleDeformableAttention": "1.0"},
                      owners={"MultiScaleDeformableAttention": ["MultiScaleDeformableAttention"]})
    [line] = prefix_collisions(b, info, allowed_dists=set(), recorded={})
    assert "op MSDA2 (source gdino (github.com/b)) would install MultiScaleDeformableAttention" \
        in line and "from MultiScaleDeformableAttention 1.0 (not installed by envbuild)" in line
    assert prefix_collisions(b, info, {"multiscaledeformableattention"}, {}) == []


def test_prefix_info_names_the_owner_of_a_module_and_a_file(tmp_path: Path) -> None:
    prefix = tmp_path / "p"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    site = next(prefix.glob("lib/python*/site-packages"))
    info_dir = site / "theirs-2.0.dist-info"
    info_dir.mkdir()
    (info_dir / "METADATA").write_text("Metadata-Version: 2.1\nName: theirs\nVersion: 2.0\n")
    (info_dir / "RECORD").write_text("mod.cpython-311-x86_64-linux-gnu.so,,\npkg/__init__.py,,\n"
                                     "pkg/data.txt,,\n")
    got = prefix_info(prefix / "bin" / "python", {"PATH": "/usr/bin:/bin"},
                      files=["pkg/data.txt"], tops=["mod", "pkg", "absent"])
    assert got.dists["theirs"] == "2.0" and got.env["python_version"].startswith("3.")
    assert got.owners == {"mod": ["theirs"], "pkg": ["theirs"], "pkg/data.txt": ["theirs"]}


def test_normalised_wheels_are_identical_whatever_the_zip_order_and_times(
        tmp_path: Path) -> None:
    files = {"b/x.py": "1", "a.so": "elf", "p-1.dist-info/RECORD": "r"}
    for i, order in enumerate((list(files), list(reversed(files)))):
        with zipfile.ZipFile(tmp_path / f"w{i}.whl", "w") as zf:
            for n in order:
                info = zipfile.ZipInfo(n, date_time=(2020 + i, 1, 1, 0, 0, 0))
                info.external_attr = (0o100600 + i * 0o111) << 16
                zf.writestr(info, files[n])
    assert (tmp_path / "w0.whl").read_bytes() != (tmp_path / "w1.whl").read_bytes()
    assert compare_wheels(tmp_path / "w0.whl", tmp_path / "w1.whl") == []
    normalize_wheel(tmp_path / "w0.whl")
    with zipfile.ZipFile(tmp_path / "w0.whl") as zf:
        assert zf.namelist() == ["a.so", "b/x.py", "p-1.dist-info/RECORD"]
    with zipfile.ZipFile(tmp_path / "w1.whl", "a") as zf:
        zf.writestr("b/x.py.extra", "2")
    [diff] = compare_wheels(tmp_path / "w0.whl", tmp_path / "w1.whl")
    assert diff.name == "b/x.py.extra" and diff.first is None and diff.second


def test_inner_paths_are_mapped_after_the_dirs_holding_them(tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    site = prefix / "lib" / "site-packages"
    maps = prefix_maps(tmp_path / "store" / "build" / "k", prefix, [site], site / "nvidia" / "cu13")
    names = [fixed for _, fixed in maps]
    # gcc applies the last matching -ffile-prefix-map: inner dirs must come later
    assert names.index("/envbuild/prefix") < names.index("/envbuild/site") \
        < names.index("/envbuild/cuda")


def test_a_kept_wheel_that_was_changed_is_discarded(tmp_path: Path) -> None:
    store, key = tmp_path / "store", "k" * 64
    out = tmp_path / "out"
    out.mkdir()
    wheel = _wheel(out / "op-1-cp311.whl", {"op.so": "x"})
    (out / "build.log").write_text("log")
    where = quarantine.keep(store, key, wheel, out / "build.log", "check-deps", "missing x")
    kept = quarantine.kept(store, key)
    assert kept is not None and kept.check == "check-deps" and kept.log.read_text() == "log"
    reason = json.loads((where / "reason.json").read_text())
    assert reason["wheel"] == "op-1-cp311.whl" and len(reason["wheel_sha256"]) == 64
    with zipfile.ZipFile(kept.wheel, "a") as zf:
        zf.writestr("evil.so", "y")
    assert quarantine.kept(store, key) is None and not where.exists()


