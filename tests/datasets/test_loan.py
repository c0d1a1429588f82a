"""Specifications of fetch_loan's download, verification and caching.

No test reaches the internet: a loopback HTTP server serves a small made-up
CSV, and the expected URL and git blob hash are injected through the module's
private constants.
"""

import http.server
import os
import socket
import threading

import numpy as np
import pytest

from skpoison.datasets import (
    ChecksumError,
    _loan,
    clear_data_home,
    fetch_loan,
    get_data_home,
)

pytestmark = pytest.mark.network

CSV = (
    b"int_rate,loan_amnt,term: 36 months,term: 60 months\n"
    b"0.10,0.5,1.0,0.0\n"
    b"0.20,0.25,0.0,1.0\n"
    b"0.15,0.75,1.0,0.0\n"
    b"0.12,1.0,0.0,1.0\n"
    b"0.30,0.0,1.0,0.0\n"
)


def git_blob_sha1(content):
    # Computed here independently of the library, like `git hash-object`.
    import hashlib

    return hashlib.sha1(
        b"blob " + str(len(content)).encode() + b"\x00" + content
    ).hexdigest()


class Server:
    """A loopback HTTP server whose behaviour a test can switch."""

    def __init__(self):
        self.body = CSV
        self.mode = "ok"  # "ok", "truncate"
        self.requests = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                if server.mode == "truncate":
                    self.wfile.write(server.body[: len(server.body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                else:
                    self.wfile.write(server.body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/loan-processed.csv"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.05,), daemon=True
        )
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    srv = Server()
    monkeypatch.setattr(_loan, "_LOAN_URL", srv.url)
    monkeypatch.setattr(_loan, "_LOAN_GIT_SHA1", git_blob_sha1(CSV))
    yield srv
    srv.close()


def leftover_files(folder):
    return sorted(os.listdir(folder))


def test_git_blob_hash_matches_git_for_a_known_blob():
    # `printf 'hello\n' | git hash-object --stdin`
    assert (
        _loan._git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"
    )


def test_download_parses_target_and_features(server, tmp_path):
    bunch = fetch_loan(data_home=tmp_path)
    np.testing.assert_array_equal(bunch.target, [0.10, 0.20, 0.15, 0.12, 0.30])
    assert bunch.data.shape == (5, 3) and bunch.data.dtype == np.float64
    assert list(bunch.feature_names) == [
        "loan_amnt",
        "term: 36 months",
        "term: 60 months",
    ]
    assert list(bunch.target_names) == ["int_rate"]
    assert "6722" in bunch.DESCR and "88 features" in bunch.DESCR
    assert (tmp_path / "loan-processed.csv").read_bytes() == CSV
    assert leftover_files(tmp_path) == ["loan-processed.csv"]


def test_second_call_reads_the_cache_without_a_request(server, tmp_path):
    X1, y1 = fetch_loan(data_home=tmp_path, return_X_y=True)
    assert server.requests == 1
    X2, y2 = fetch_loan(data_home=tmp_path, return_X_y=True, download_if_missing=False)
    assert server.requests == 1
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)


def test_data_home_defaults_to_the_environment_variable(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SKPOISON_DATA", str(tmp_path / "home"))
    assert get_data_home() == str(tmp_path / "home")
    fetch_loan()
    assert (tmp_path / "home" / "loan-processed.csv").exists()
    clear_data_home()
    assert not (tmp_path / "home").exists()


def test_data_home_falls_back_to_the_home_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    for value in (None, ""):
        if value is None:
            monkeypatch.delenv("SKPOISON_DATA", raising=False)
        else:
            monkeypatch.setenv("SKPOISON_DATA", value)
        assert get_data_home() == str(tmp_path / "skpoison_data")


def test_corrupted_download_raises_and_leaves_no_file(server, tmp_path):
    server.body = CSV.replace(b"0.20", b"0.21")
    with pytest.raises(ChecksumError, match=git_blob_sha1(CSV)):
        fetch_loan(data_home=tmp_path)
    assert leftover_files(tmp_path) == []


def test_interrupted_download_raises_and_leaves_no_file(server, tmp_path):
    server.mode = "truncate"
    with pytest.raises(ConnectionError, match="interrupted|received"):
        fetch_loan(data_home=tmp_path)
    assert leftover_files(tmp_path) == []
    # A later call with a healthy server succeeds: nothing stale blocks it.
    server.mode = "ok"
    assert fetch_loan(data_home=tmp_path).data.shape == (5, 3)


def test_offline_error_says_what_to_download_and_where_to_put_it(monkeypatch, tmp_path):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/loan-processed.csv"
    monkeypatch.setattr(_loan, "_LOAN_URL", url)
    with pytest.raises(ConnectionError) as info:
        fetch_loan(data_home=tmp_path)
    message = str(info.value)
    assert url in message
    assert str(tmp_path / "loan-processed.csv") in message
    assert _loan._LOAN_GIT_SHA1 in message
    assert leftover_files(tmp_path) == []


def test_missing_file_without_download_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="download_if_missing=False"):
        fetch_loan(data_home=tmp_path, download_if_missing=False)


def test_damaged_cache_raises_checksum_error(server, tmp_path):
    fetch_loan(data_home=tmp_path)
    (tmp_path / "loan-processed.csv").write_bytes(CSV + b"0.5,0.5,1.0,0.0\n")
    with pytest.raises(ChecksumError, match="clear_data_home"):
        fetch_loan(data_home=tmp_path)


def test_random_subset_is_reproducible_and_without_repeats(server, tmp_path):
    X_all, y_all = fetch_loan(data_home=tmp_path, return_X_y=True)
    X_a, y_a = fetch_loan(
        data_home=tmp_path, return_X_y=True, n_samples=3, random_state=7
    )
    X_b, y_b = fetch_loan(
        data_home=tmp_path, return_X_y=True, n_samples=3, random_state=7
    )
    np.testing.assert_array_equal(X_a, X_b)
    np.testing.assert_array_equal(y_a, y_b)
    assert len(set(y_a.tolist())) == 3
    # Every drawn row is a row of the file, features and target together.
    rows = {tuple(r) for r in np.column_stack([X_all, y_all])}
    assert all(tuple(r) in rows for r in np.column_stack([X_a, y_a]))


@pytest.mark.parametrize("n_samples", [0, -1, 2.5, 6])
def test_bad_n_samples_is_rejected(server, tmp_path, n_samples):
    with pytest.raises(ValueError, match="n_samples"):
        fetch_loan(data_home=tmp_path, n_samples=n_samples)


def test_as_frame(server, tmp_path):
    pd = pytest.importorskip("pandas")
    bunch = fetch_loan(data_home=tmp_path, as_frame=True)
    assert isinstance(bunch.frame, pd.DataFrame) and bunch.frame.shape == (5, 4)
    assert bunch.target.name == "int_rate"


def test_default_url_points_at_manip_ml_raw_file():
    assert _loan._LOAN_URL.startswith(
        "https://raw.githubusercontent.com/jagielski/manip-ml/"
    )
    assert _loan._LOAN_URL.endswith("/datasets/loan-processed.csv")
    assert _loan._LOAN_GIT_SHA1 == "f7604b69ef645036565b08422e4b464a8e0f7cab"


def test_keyboard_interrupt_mid_download_leaves_no_file(monkeypatch, tmp_path):
    class Response:
        headers = {"Content-Length": str(len(CSV))}
        calls = 0

        def read(self, size):
            Response.calls += 1
            if Response.calls > 1:
                raise KeyboardInterrupt
            return CSV[:10]

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(_loan.urllib.request, "urlopen", lambda *a, **k: Response())
    with pytest.raises(KeyboardInterrupt):
        fetch_loan(data_home=tmp_path)
    assert leftover_files(tmp_path) == []
