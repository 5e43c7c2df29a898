"""Downloads against a local HTTP server on 127.0.0.1: resume, retries, checksums, safety."""

import hashlib
import io
import sys
import threading
import types
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from nuclei_unet.config.schema import DownloadParams
from nuclei_unet.data.download import download
from nuclei_unet.data.fetch import STAGE1_TRAIN_SHA256, cache_name, fetch, fetch_kaggle
from nuclei_unet.errors import DataError
from nuclei_unet.io.dsb import list_samples


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


class Server:
    """Serves ``routes[path] = (body, mode)``; mode: ok, range, flaky, flaky-norange, cut."""

    def __init__(self):
        self.routes: dict[str, tuple[bytes, str]] = {}
        self.log: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                server.log.append((self.path, rng))
                if self.path not in server.routes:
                    self.send_error(404)
                    return
                body, mode = server.routes[self.path]
                tries = sum(1 for p, _ in server.log if p == self.path)
                start = int(rng.split("=")[1].rstrip("-")) if rng else 0
                cut = mode == "cut" or (mode.startswith("flaky") and tries == 1)
                if start and mode in ("range", "flaky"):
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                    payload = body[start:]
                else:
                    self.send_response(200)
                    payload = body
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                # a cut transfer promises everything and sends half, then hangs up
                self.wfile.write(payload[: len(payload) // 2] if cut else payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def dsb_zip(tiny_dsb) -> bytes:
    return _zip_bytes({str(p.relative_to(tiny_dsb)): p.read_bytes() for p in sorted(tiny_dsb.rglob("*.png"))})


def _params(url, tmp_path, **kw) -> DownloadParams:
    return DownloadParams(source="url", url=url, cache_dir=str(tmp_path / "cache"), timeout=5,
                          retries=kw.pop("retries", 2), backoff=0.01, **kw)


def test_download_extract_and_cache(server, dsb_zip, tmp_path):
    server.routes["/d.zip"] = (dsb_zip, "range")
    sha = hashlib.sha256(dsb_zip).hexdigest()
    download(_params(server.url + "/d.zip", tmp_path, sha256=sha), 0, tmp_path / "out")
    assert len(list_samples(tmp_path / "out")) == 3
    assert (tmp_path / "cache" / cache_name(server.url + "/d.zip")).read_bytes() == dsb_zip
    # a second run (a param changed downstream, say) downloads nothing
    download(_params(server.url + "/d.zip", tmp_path, sha256=sha), 0, tmp_path / "out2")
    assert len(server.log) == 1


@pytest.mark.parametrize("mode, resumed", [("flaky", True), ("flaky-norange", False)])
def test_resume_with_and_without_range_support(server, dsb_zip, tmp_path, mode, resumed):
    server.routes["/d.zip"] = (dsb_zip, mode)
    path = fetch(server.url + "/d.zip", tmp_path, hashlib.sha256(dsb_zip).hexdigest(),
                 timeout=5, retries=2, backoff=0.01)
    assert path.read_bytes() == dsb_zip
    assert len(server.log) == 2
    second_range = server.log[1][1]
    assert second_range == f"bytes={len(dsb_zip) // 2}-"  # the client always asks to resume
    assert not list(tmp_path.glob("*.part"))


def test_truncated_download_fails_cleanly(server, dsb_zip, tmp_path):
    server.routes["/d.zip"] = (dsb_zip, "cut")
    with pytest.raises(DataError, match=r"download failed after 3 tries: got \d+ of \d+ bytes"):
        download(_params(server.url + "/d.zip", tmp_path), 0, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not list((tmp_path / "cache").glob("*.zip"))


def test_wrong_checksum_is_refused_and_not_cached(server, dsb_zip, tmp_path):
    server.routes["/d.zip"] = (dsb_zip, "range")
    with pytest.raises(DataError, match="sha256 is .*, expected ffff"):
        download(_params(server.url + "/d.zip", tmp_path, sha256="f" * 64), 0, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not list((tmp_path / "cache").iterdir())


def test_zip_slip_and_non_dsb_archives(server, dsb_zip, tmp_path):
    server.routes["/slip.zip"] = (_zip_bytes({"a/images/a.png": b"x", "../../evil": b"x"}), "range")
    server.routes["/other.zip"] = (_zip_bytes({"notes.txt": b"hello"}), "range")
    with pytest.raises(DataError, match="entry '../../evil' points outside"):
        download(_params(server.url + "/slip.zip", tmp_path), 0, tmp_path / "out")
    with pytest.raises(DataError, match="not the DSB2018 layout"):
        download(_params(server.url + "/other.zip", tmp_path), 0, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil").exists()


def test_http_404_is_not_retried(server, tmp_path):
    with pytest.raises(DataError, match="HTTP 404"):
        fetch(server.url + "/missing.zip", tmp_path, retries=3, backoff=0.01)
    assert len(server.log) == 1


def test_file_url(dsb_zip, tmp_path):
    (tmp_path / "d.zip").write_bytes(dsb_zip)
    download(_params((tmp_path / "d.zip").as_uri(), tmp_path), 0, tmp_path / "out")
    assert len(list_samples(tmp_path / "out")) == 3


def test_kaggle_without_credentials(tmp_path, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.delenv("KAGGLE_KEY", raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "nothing"))
    with pytest.raises(DataError, match="kaggle: no credentials"):
        fetch_kaggle(tmp_path / "cache")


def _pinned_then_told(params: DownloadParams, dsb_zip: bytes, tmp_path) -> None:
    """An official source refuses any archive but the known release (nothing is unpacked) and
    takes one whose sha256 the params give."""
    with pytest.raises(DataError, match=f"sha256 is .*, expected {STAGE1_TRAIN_SHA256}"):
        download(params, 0, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    download(params.model_copy(update={"sha256": hashlib.sha256(dsb_zip).hexdigest()}), 0, tmp_path / "out")
    assert len(list_samples(tmp_path / "out")) == 3


def test_bbbc038_source_fetches_the_pinned_release(server, dsb_zip, tmp_path, monkeypatch):
    """source: bbbc038 downloads BBBC038's stage1_train.zip and refuses anything but the
    known release unless told its sha256 (the broad's server stands in for a local one)."""
    server.routes["/bbbc/BBBC038/stage1_train.zip"] = (dsb_zip, "range")
    monkeypatch.setattr("nuclei_unet.data.download.BBBC038_URL", server.url + "/bbbc/BBBC038/stage1_train.zip")
    params = DownloadParams(source="bbbc038", cache_dir=str(tmp_path / "cache"), timeout=5, retries=0)
    _pinned_then_told(params, dsb_zip, tmp_path)
    assert [path for path, _ in server.log] == ["/bbbc/BBBC038/stage1_train.zip"] * 2


def test_kaggle_source_uses_the_official_client(dsb_zip, tmp_path, monkeypatch):
    """source: kaggle asks the kaggle client for the competition's stage1_train.zip (a stand-in
    client here, since the real one needs the network) and pins the release like bbbc038."""
    asked = []

    class FakeApi:
        def authenticate(self):
            asked.append("authenticate")

        def competition_download_file(self, competition, name, path, quiet):
            asked.append((competition, name))
            with open(f"{path}/{name}", "wb") as f:
                f.write(dsb_zip)

    module = types.ModuleType("kaggle.api.kaggle_api_extended")
    module.KaggleApi = FakeApi
    for name in ("kaggle", "kaggle.api"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "kaggle.api.kaggle_api_extended", module)
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "secret")
    params = DownloadParams(source="kaggle", cache_dir=str(tmp_path / "cache"))
    _pinned_then_told(params, dsb_zip, tmp_path)
    assert asked[:2] == ["authenticate", ("data-science-bowl-2018", "stage1_train.zip")]
