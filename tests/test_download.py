"""Unpacking a local DSB zip: checksum, zip-slip, layout, atomicity."""

import hashlib
import stat
import zipfile

import pytest

from nuclei_unet.data.download import extract_zip
from nuclei_unet.errors import DataError
from nuclei_unet.io.dsb import list_samples
from nuclei_unet.io.files import sha256_file


def _zip_of(folder, path, prefix=""):
    with zipfile.ZipFile(path, "w") as zf:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                zf.write(file, prefix + str(file.relative_to(folder)))
    return path


@pytest.mark.parametrize("prefix", ["", "stage1_train/"])
def test_unpacks_top_level_or_one_folder_deep(tiny_dsb, tmp_path, prefix):
    archive = _zip_of(tiny_dsb, tmp_path / "d.zip", prefix)
    out = tmp_path / "out"
    assert extract_zip(archive, out, sha256_file(archive)) == 3
    assert [s.id for s in list_samples(out)] == ["img0", "img1", "img2"]
    assert (out / "img1" / "masks" / "2.png").read_bytes() == (
        tiny_dsb / "img1" / "masks" / "2.png"
    ).read_bytes()


def test_sha256_of_file(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert sha256_file(tmp_path / "f") == hashlib.sha256(b"abc").hexdigest()


def _assert_refused(archive, out, message, sha=None):
    out.mkdir()
    (out / "keep.txt").write_text("the user's earlier data")
    with pytest.raises(DataError, match=message):
        extract_zip(archive, out, sha)
    # nothing half-written, nothing of the user's lost
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".out.")]


def test_wrong_checksum(tiny_dsb, tmp_path):
    archive = _zip_of(tiny_dsb, tmp_path / "d.zip")
    _assert_refused(archive, tmp_path / "out", "sha256 is .*, expected 0000", "0" * 64)


def test_zip_slip_entry(tiny_dsb, tmp_path):
    archive = _zip_of(tiny_dsb, tmp_path / "d.zip")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("../evil.txt", "x")
    _assert_refused(archive, tmp_path / "out", r"entry '../evil.txt' points outside")
    assert not (tmp_path / "evil.txt").exists()


def test_absolute_entry(tiny_dsb, tmp_path):
    archive = _zip_of(tiny_dsb, tmp_path / "d.zip")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("/etc/evil", "x")
    _assert_refused(archive, tmp_path / "out", "absolute path")


def test_symlink_entry(tiny_dsb, tmp_path):
    archive = _zip_of(tiny_dsb, tmp_path / "d.zip")
    info = zipfile.ZipInfo("img0/link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr(info, "/etc/passwd")
    _assert_refused(archive, tmp_path / "out", "symbolic link")


def test_not_dsb_layout(tmp_path):
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("readme.txt", "hello")
    _assert_refused(archive, tmp_path / "out", "not the DSB2018 layout")


def test_not_a_zip(tmp_path):
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 truncated")
    _assert_refused(tmp_path / "bad.zip", tmp_path / "out", "not a valid zip")


def test_missing_zip(tmp_path):
    with pytest.raises(DataError, match=r"nope\.zip: zip file not found"):
        extract_zip(tmp_path / "nope.zip", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_image_folders_under_two_roots(tiny_dsb, tmp_path):
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for root in ("a/", "b/"):
            zf.write(tiny_dsb / "img0" / "images" / "img0.png", f"{root}img0/images/img0.png")
    _assert_refused(archive, tmp_path / "out", r"image folders under several roots: \['a/', 'b/'\]")


def test_folder_entries_and_files_outside_the_root_are_left_out(tiny_dsb, tmp_path):
    """A zip as GUIs write it: folder entries, and a README beside the one image root."""
    archive = _zip_of(tiny_dsb, tmp_path / "d.zip", "stage1_train/")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("stage1_train/", "")
        zf.writestr("README.txt", "about the data")
    out = tmp_path / "out"
    assert extract_zip(archive, out) == 3
    assert sorted(p.name for p in out.iterdir()) == ["img0", "img1", "img2"]
