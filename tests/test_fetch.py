"""The URL downloader must fetch what it is allowed to and refuse everything else before
connecting. A threaded HTTP server on 127.0.0.1 plays every kind of server; no traffic
leaves the loopback interface (anything that would is intercepted at `fetch._connect`).
"""

from __future__ import annotations

import ipaddress
import pickle
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from detector_core import fetch
from detector_core.errors import (
    BlockedURLError,
    DownloadTooLargeError,
    FetchError,
    FetchTimeoutError,
    HTTPStatusError,
    HumanmadeError,
    InvalidURLError,
    TooManyRedirectsError,
)
from detector_core.fetch import ALLOW_HINT, FetchedBytes, FetchPolicy, fetch_url

PAYLOAD = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40  # image-ish, 10 248 bytes
LOCAL = frozenset({"127.0.0.1"})
SMALL_CAP = 64 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen_headers: list[dict[str, str]] = []

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output quiet
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str, status: int = 302) -> None:
        self._send(status, headers={"Location": location})

    def do_GET(self) -> None:
        _Handler.seen_headers.append(dict(self.headers.items()))
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        try:
            if path == "/image.png":
                self._send(200, PAYLOAD, {"Content-Type": "image/png"})
            elif path.startswith("/chain/"):
                left = int(path.rsplit("/", 1)[1])
                # Alternate absolute and relative Locations to exercise urljoin.
                if left == 0:
                    self._redirect("/image.png", 301)
                elif left % 2:
                    self._redirect(f"{left - 1}", 307)
                else:
                    host = self.headers["Host"]
                    self._redirect(f"http://{host}/chain/{left - 1}", 302)
            elif path == "/loop":
                self._redirect("/loop")
            elif path == "/to":
                self._redirect(query["url"][0])
            elif path == "/redirect-without-location":
                self._send(302)
            elif path == "/huge-close":
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                for _ in range(200):  # 12.8 MB at most; the client hangs up long before
                    self.wfile.write(b"\0" * 65536)
            elif path == "/huge-chunked":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for _ in range(200):
                    self.wfile.write(b"10000\r\n" + b"\0" * 65536 + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            elif path == "/chunked-image":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for start in range(0, len(PAYLOAD), 1000):
                    piece = PAYLOAD[start : start + 1000]
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            elif path == "/lying-length":
                self.send_response(200)
                self.send_header("Content-Length", str(10**9))
                self.end_headers()
                self.wfile.write(b"tiny")
                self.close_connection = True
            elif path == "/truncated":
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b"x" * 10)
                self.close_connection = True
            elif path == "/drip-body":
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self._drip(b"x" * 1000)
            elif path == "/drip-headers":
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                self._drip(b"X-Slow: " + b"a" * 1000 + b"\r\n")
            elif path == "/stall":
                time.sleep(1.5)
                self._send(200, PAYLOAD)
            elif path.startswith("/status/"):
                self._send(int(path.rsplit("/", 1)[1]), b"nope")
            else:
                self._send(404, b"no such route")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up, as the test wanted

    def _drip(self, data: bytes) -> None:
        # One byte every 20 ms: each read finishes well inside the read timeout, so only the
        # total deadline can stop it. Bounded to ~3 s so a broken client cannot wedge the server.
        for byte in data[:150]:
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(0.02)
        self.close_connection = True


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture()
def connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every address the fetcher connects to, and refuses anything not on loopback."""
    seen: list[str] = []
    real_connect = fetch._connect

    def guarded(address: fetch._Address, timeout: float) -> socket.socket:
        seen.append(str(address.ip))
        assert address.ip.is_loopback, f"test tried to leave the machine: {address.ip}"
        return real_connect(address, timeout)

    monkeypatch.setattr(fetch, "_connect", guarded)
    return seen


@pytest.fixture()
def no_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a connection was attempted: {args}")

    monkeypatch.setattr(fetch, "_connect", forbidden)
    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(socket.socket, "connect", forbidden)


def local(**overrides: object) -> FetchPolicy:
    return FetchPolicy(allow_hosts=LOCAL, **overrides)  # type: ignore[arg-type]


# --- happy paths ----------------------------------------------------------------------------


def test_fetches_image_bytes_and_reports_content_type(server: str, connections: list[str]):
    result = fetch_url(f"{server}/image.png", local())
    assert result == FetchedBytes(PAYLOAD, f"{server}/image.png", "image/png")
    assert connections == ["127.0.0.1"]


def test_sends_only_the_expected_headers(server: str, connections: list[str]):
    _Handler.seen_headers.clear()
    fetch_url(f"{server}/image.png?x=1", local())
    headers = {k.lower(): v for k, v in _Handler.seen_headers[-1].items()}
    assert headers["host"] == server.removeprefix("http://")
    assert headers["user-agent"] == FetchPolicy().user_agent
    assert headers["accept-encoding"] == "identity"
    assert "cookie" not in headers and "authorization" not in headers


def test_follows_redirect_chain_with_relative_locations(server: str, connections: list[str]):
    result = fetch_url(f"{server}/chain/4", local())
    assert result.data == PAYLOAD
    assert result.final_url == f"{server}/image.png"
    assert set(connections) == {"127.0.0.1"} and len(connections) == 6


def test_decodes_chunked_transfer_encoding(server: str, connections: list[str]):
    assert fetch_url(f"{server}/chunked-image", local()).data == PAYLOAD


def test_allow_hosts_accepts_cidr_networks(server: str, connections: list[str]):
    policy = FetchPolicy(allow_hosts=frozenset({"127.0.0.0/8"}))
    assert fetch_url(f"{server}/image.png", policy).data == PAYLOAD


def test_allow_hosts_accepts_host_names(server: str, connections: list[str]):
    port = urlsplit(server).port
    policy = FetchPolicy(allow_hosts=frozenset({"LocalHost"}))
    assert fetch_url(f"http://localhost:{port}/image.png", policy).data == PAYLOAD


def test_policy_rejects_a_malformed_network_at_construction():
    with pytest.raises(ValueError, match="not a valid network"):
        FetchPolicy(allow_hosts=frozenset({"10.0.0.0/33"}))
    assert FetchPolicy(allow_hosts={"10.0.0.0/8"}).allow_hosts == frozenset({"10.0.0.0/8"})  # type: ignore[arg-type]


# --- refusals before any connection ---------------------------------------------------------

BLOCKED_HOSTS = [
    "127.0.0.1",
    "127.1.2.3",
    "localhost",
    "[::1]",
    "0.0.0.0",
    "2130706433",  # decimal 127.0.0.1
    "0x7f000001",  # hex
    "0x7f.1",  # mixed short form
    "0177.0.0.1",  # octal
    "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6
    "[::ffff:10.0.0.1]",
    "[2002:7f00:1::]",  # 6to4 wrapping 127.0.0.1
    "[64:ff9b::a9fe:a9fe]",  # NAT64 wrapping 169.254.169.254
    "[2001:0:4136:e378:8000:63bf:3fff:fdd2]",  # Teredo
    "[::]",
    "10.0.0.5",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",  # carrier-grade NAT
    "198.18.0.1",  # benchmarking
    "224.0.0.1",
    "239.255.255.250",
    "255.255.255.255",
    "240.0.0.1",
    "[fc00::1]",
    "[fd12:3456::1]",
    "[fe80::1]",
    "[ff02::1]",
    "[ff0e::1]",  # global-scope multicast: is_global says yes, still refused
    "[2001:db8::1]",  # documentation
    # The IANA special-purpose registries, where ipaddress.is_global (3.11) says "global":
    "192.0.0.8",  # IPv4 dummy address, 192.0.0.0/24
    "192.0.0.9",  # PCP anycast, 192.0.0.0/24
    "192.31.196.1",  # AS112-v4
    "192.175.48.1",  # AS112 direct delegation
    "[fec0::1]",  # site-local, deprecated
    "[3fff::1]",  # documentation, 3fff::/20
    "[5f00::1]",  # SRv6 SIDs
    "[2002:5db8:d822::]",  # 6to4 wrapping the public 93.184.216.34: still a relay address
    "[100::1]",  # discard-only
    "[4000::1]",  # outside 2000::/3, unassigned
]


@pytest.mark.parametrize("host", BLOCKED_HOSTS)
@pytest.mark.usefixtures("no_connect")
def test_refuses_non_public_addresses_without_connecting(host: str):
    with pytest.raises(BlockedURLError, match="^Refused: "):
        fetch_url(f"http://{host}/latest/meta-data")
    with pytest.raises(BlockedURLError):
        fetch_url(f"https://{host}:8443/x.png")


@pytest.mark.usefixtures("no_connect")
def test_refusal_message_names_host_address_and_kind(monkeypatch: pytest.MonkeyPatch):
    fake_dns(monkeypatch, ["10.0.0.5"])
    with pytest.raises(BlockedURLError) as info:
        fetch_url("http://example.internal/cat.png")
    # The address itself is never shown: users must not resolve internal names through us.
    assert str(info.value) == (
        "Refused: example.internal resolves to a private address." + ALLOW_HINT
    )
    assert "--allow-host" in str(info.value)


@pytest.mark.usefixtures("no_connect")
def test_refuses_when_any_resolved_address_is_private(monkeypatch: pytest.MonkeyPatch):
    fake_dns(monkeypatch, ["93.184.216.34", "192.168.0.10"])
    with pytest.raises(BlockedURLError, match="mixed.example resolves to a private address"):
        fetch_url("http://mixed.example/cat.png")


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("127.0.0.1", "Refused: 127.0.0.1 is a loopback address."),
        ("[::1]", "Refused: ::1 is a loopback address."),
        ("[::ffff:127.0.0.1]", "is a loopback address (it embeds 127.0.0.1)."),
        ("[64:ff9b::a9fe:a9fe]", "is a link-local address (it embeds 169.254.169.254)."),
        ("2130706433", "Refused: 2130706433 resolves to a loopback address."),
        ("0.0.0.0", "Refused: 0.0.0.0 is an unspecified address."),
    ],
)
@pytest.mark.usefixtures("no_connect")
def test_refusal_messages_are_readable(host: str, message: str):
    with pytest.raises(BlockedURLError) as info:
        fetch_url(f"http://{host}/")
    assert str(info.value).endswith(message + ALLOW_HINT)


@pytest.mark.parametrize(
    ("entry", "url_host"),
    [("127.0.0.1:8765", "127.0.0.1"), ("[::1]:8765", "[::1]"), ("LocalHost:8080", "localhost")],
)
def test_allow_hosts_takes_a_host_with_its_port(entry: str, url_host: str):
    from detector_core.fetch import _parse_allow_hosts

    allowed = _parse_allow_hosts([entry])
    host = url_host.strip("[]")
    assert host in allowed.names or any(
        ipaddress.ip_address(host) in network for network in allowed.networks
    )


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (socket.EAI_NONAME, "does not exist (no such name in DNS)"),
        (socket.EAI_AGAIN, "did not answer"),
    ],
)
def test_a_dns_failure_is_said_in_words(monkeypatch: pytest.MonkeyPatch, code: int, words: str):
    def fail(*args, **kwargs):
        raise socket.gaierror(code, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(FetchError) as info:
        fetch_url("http://no-such-host.example/cat.png")
    assert words in str(info.value)
    assert "Errno" not in str(info.value) and "Name or service" not in str(info.value)


@pytest.mark.usefixtures("no_connect")
@pytest.mark.parametrize(
    ("address", "kind"),
    [("192.0.0.8", "special-purpose"), ("fec0::1", "site-local"), ("3fff::1", "special-purpose")],
)
def test_a_name_resolving_to_a_special_range_is_refused_without_naming_it(
    monkeypatch: pytest.MonkeyPatch, address: str, kind: str
):
    fake_dns(monkeypatch, [address])
    with pytest.raises(BlockedURLError) as info:
        fetch_url("http://images.example/cat.png")
    assert str(info.value) == f"Refused: images.example resolves to a {kind} address." + ALLOW_HINT


def test_the_special_purpose_list_covers_what_is_global_misses():
    from detector_core.special_addresses import is_special_purpose

    for text in ("192.0.0.8", "192.0.0.170", "fec0::1", "3fff:fff::1", "2001:2::1"):
        assert is_special_purpose(fetch.ipaddress.ip_address(text)), text
    for text in ("93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"):
        assert not is_special_purpose(fetch.ipaddress.ip_address(text)), text


@pytest.mark.parametrize(
    "ip", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"]
)
def test_public_addresses_pass_validation(ip: str):
    assert fetch._blocked_reason(fetch.ipaddress.ip_address(ip)) is None


@pytest.mark.usefixtures("no_connect")
def test_allow_listed_ipv4_does_not_open_tunnelled_ipv6_forms():
    # 6to4 / NAT64 addresses travel through relays on the internet, not to the listed host.
    policy = FetchPolicy(allow_hosts=frozenset({"127.0.0.0/8", "169.254.0.0/16"}))
    for host in ("[2002:7f00:1::]", "[64:ff9b::a9fe:a9fe]"):
        with pytest.raises(BlockedURLError):
            fetch_url(f"http://{host}/", policy)
    allow = fetch._parse_allow_hosts(policy.allow_hosts)
    assert fetch._is_allowed(fetch.ipaddress.ip_address("::ffff:127.0.0.1"), allow)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/cat.png",
        "file:///etc/passwd",
        "gopher://example.com/_GET",
        "javascript:alert(1)",
        "data:image/png;base64,iVBORw0KGgo=",
        "dict://127.0.0.1:11211/stat",
    ],
)
@pytest.mark.usefixtures("no_connect")
def test_refuses_other_schemes(url: str):
    with pytest.raises(BlockedURLError, match="scheme is not allowed"):
        fetch_url(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "No URL"),
        ("   ", "No URL"),
        ("http://user:pass@example.com/cat.png", "user name or password"),
        ("http://user@example.com/cat.png", "user name or password"),
        ("https://example.com@127.0.0.1/", "user name or password"),
        ("example.com/cat.png", "no scheme"),
        ("http:///cat.png", "no host"),
        ("http://", "no host"),
        ("http://example.com:99999/", "invalid port"),
        ("http://example.com:0/", "invalid port"),
        ("http://exa mple.com/", "invalid host"),
        ("http://exa\nmple.com/", "control characters"),
        ("http://[::1/", "Not a valid URL"),
        ("http://[fe80::1%25eth0]/", "zone"),
        ("http://" + "a" * 64 + ".com/", "invalid host"),
        ("http://example.com/" + "a" * 9000, "limit is 8192"),
    ],
)
@pytest.mark.usefixtures("no_connect")
def test_rejects_malformed_urls_with_clear_messages(url: str, message: str):
    with pytest.raises(InvalidURLError, match=message):
        fetch_url(url)


def test_errors_belong_to_the_engine_hierarchy():
    for error in (InvalidURLError, HTTPStatusError, BlockedURLError, DownloadTooLargeError):
        assert issubclass(error, FetchError) and issubclass(error, HumanmadeError)
    restored = pickle.loads(pickle.dumps(HTTPStatusError("x answered 404.", 404)))
    assert restored.status == 404 and str(restored) == "x answered 404."


# --- redirects are re-validated -------------------------------------------------------------


@pytest.mark.parametrize(
    "location",
    [
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://127.0.0.2/",  # loopback, but not the allow-listed 127.0.0.1
        "file:///etc/passwd",
        "http://user:pw@example.com/",
    ],
)
def test_redirect_targets_are_validated_before_connecting(
    server: str, connections: list[str], location: str
):
    with pytest.raises((BlockedURLError, InvalidURLError)):
        fetch_url(f"{server}/to?url={location}", local())
    assert connections == ["127.0.0.1"]  # only the first, allowed hop was connected


def test_redirect_from_allowed_name_to_other_loopback_name_is_refused(
    server: str, connections: list[str]
):
    port = urlsplit(server).port
    policy = FetchPolicy(allow_hosts=frozenset({"localhost"}))
    # 127.0.0.1 is the very same server, but only the name "localhost" was allow-listed.
    with pytest.raises(BlockedURLError, match="127.0.0.1 is a loopback address"):
        fetch_url(f"http://localhost:{port}/to?url=http://127.0.0.1:{port}/image.png", policy)
    assert "127.0.0.1" in connections and set(connections) <= {"127.0.0.1", "::1"}


def test_redirect_loop_stops_at_the_limit(server: str, connections: list[str]):
    with pytest.raises(TooManyRedirectsError, match="more than 3 redirects"):
        fetch_url(f"{server}/loop", local(max_redirects=3))
    assert len(connections) == 4


def test_long_chain_exceeding_the_limit_is_refused(server: str, connections: list[str]):
    with pytest.raises(TooManyRedirectsError):
        fetch_url(f"{server}/chain/5", local(max_redirects=5))
    assert fetch_url(f"{server}/chain/4", local(max_redirects=5)).data == PAYLOAD


def test_zero_redirects_allowed_means_none_followed(server: str, connections: list[str]):
    with pytest.raises(TooManyRedirectsError):
        fetch_url(f"{server}/chain/0", local(max_redirects=0))


def test_redirect_without_location_is_a_status_error(server: str, connections: list[str]):
    with pytest.raises(HTTPStatusError, match="302") as info:
        fetch_url(f"{server}/redirect-without-location", local())
    assert info.value.status == 302


# --- DNS rebinding and the connected peer ---------------------------------------------------


def fake_dns(monkeypatch: pytest.MonkeyPatch, *answers: list[str]) -> list[str]:
    """getaddrinfo that gives the n-th answer on the n-th call (the last one after that)."""
    calls: list[str] = []

    def getaddrinfo(host: str, port: int, *args: object, **kwargs: object) -> list:
        calls.append(host)
        ips = answers[min(len(calls), len(answers)) - 1]
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0))
            if ":" in ip
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
            for ip in ips
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


class _Refused(OSError):
    pass


def test_connects_to_the_validated_address_not_a_second_lookup(monkeypatch: pytest.MonkeyPatch):
    calls = fake_dns(monkeypatch, ["93.184.216.34"], ["127.0.0.1"])
    dialled: list[tuple] = []

    def record(address: fetch._Address, timeout: float) -> socket.socket:
        dialled.append(address.sockaddr)
        raise _Refused("recorded, not connected")

    monkeypatch.setattr(fetch, "_connect", record)
    with pytest.raises(FetchError, match="Could not connect to rebind.example"):
        fetch_url("http://rebind.example/cat.png")
    assert dialled == [("93.184.216.34", 80)]
    assert calls == ["rebind.example"]  # resolved exactly once


def test_peer_address_must_match_the_validated_one(server: str, monkeypatch: pytest.MonkeyPatch):
    # Simulate something re-routing the connection: DNS says public, the socket ends up local.
    fake_dns(monkeypatch, ["93.184.216.34"])
    port = urlsplit(server).port

    def misrouted(address: fetch._Address, timeout: float) -> socket.socket:
        assert address.sockaddr == ("93.184.216.34", port)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        socket.socket.connect(sock, ("127.0.0.1", port))
        return sock

    monkeypatch.setattr(fetch, "_connect", misrouted)
    with pytest.raises(BlockedURLError, match="reached another address than the one") as info:
        fetch_url(f"http://public.example:{port}/image.png")
    assert "127.0.0.1" not in str(info.value)  # an address seen inside stays inside


def test_https_uses_verifying_context_and_url_host_name(monkeypatch: pytest.MonkeyPatch):
    context = fetch._tls_context()
    assert context.verify_mode.name == "CERT_REQUIRED" and context.check_hostname

    fake_dns(monkeypatch, ["93.184.216.34"])
    wrapped: list[str | None] = []

    class FakeContext:
        def wrap_socket(self, sock: socket.socket, server_hostname: str | None = None):
            wrapped.append(server_hostname)
            raise fetch.ssl.SSLCertVerificationError("certificate verify failed")

    class FakeSocket:
        def getpeername(self) -> tuple[str, int]:
            return ("93.184.216.34", 443)

        def settimeout(self, value: float) -> None:
            pass

        def close(self) -> None:
            pass

    monkeypatch.setattr(fetch, "_connect", lambda address, timeout: FakeSocket())
    monkeypatch.setattr(fetch, "_tls_context", lambda: FakeContext())
    with pytest.raises(FetchError, match="certificate of images.example could not be verified"):
        fetch_url("https://Images.Example/cat.png")
    assert wrapped == ["images.example"]


def test_tls_failure_becomes_a_fetch_error(server: str, connections: list[str]):
    https_url = server.replace("http://", "https://")
    with pytest.raises(FetchError, match="TLS"):
        # Either the plain-HTTP server's answer breaks the handshake, or it waits for more of
        # the ClientHello and the handshake times out; both must surface as a FetchError.
        fetch_url(f"{https_url}/image.png", local(connect_timeout=0.3))


def test_https_to_http_downgrade_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(fetch, "_open", lambda *args: None)
    monkeypatch.setattr(fetch, "_resolve", lambda target, allow: [])
    monkeypatch.setattr(fetch, "_exchange", lambda *args: "http://example.com/cat.png")
    with pytest.raises(BlockedURLError, match="from https to plain http"):
        fetch_url("https://example.com/cat.png")


# --- size caps ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/huge-close", "/huge-chunked"])
def test_body_without_length_is_cut_at_the_cap(server: str, connections: list[str], path: str):
    with pytest.raises(DownloadTooLargeError, match=f"more than {SMALL_CAP} bytes"):
        fetch_url(f"{server}{path}", local(max_bytes=SMALL_CAP))


def test_declared_length_over_cap_is_refused_before_reading(server: str, connections: list[str]):
    with pytest.raises(DownloadTooLargeError, match="is 1000000000 bytes"):
        fetch_url(f"{server}/lying-length", local(max_bytes=SMALL_CAP))


def test_body_exactly_at_the_cap_is_accepted(server: str, connections: list[str]):
    assert fetch_url(f"{server}/image.png", local(max_bytes=len(PAYLOAD))).data == PAYLOAD
    with pytest.raises(DownloadTooLargeError):
        fetch_url(f"{server}/image.png", local(max_bytes=len(PAYLOAD) - 1))
    with pytest.raises(DownloadTooLargeError):
        fetch_url(f"{server}/chunked-image", local(max_bytes=len(PAYLOAD) - 1))


def test_truncated_body_is_an_error(server: str, connections: list[str]):
    with pytest.raises(FetchError, match="after 10 of 1000 bytes"):
        fetch_url(f"{server}/truncated", local())


def test_download_too_large_is_also_an_image_size_error():
    from detector_core.errors import FileTooLargeError

    assert issubclass(DownloadTooLargeError, FileTooLargeError)


# --- time limits ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/drip-body", "/drip-headers"])
def test_slow_drip_hits_the_total_deadline(server: str, connections: list[str], path: str):
    started = time.monotonic()
    with pytest.raises(FetchTimeoutError, match="within 0.4 s"):
        fetch_url(f"{server}{path}", local(read_timeout=5.0, total_timeout=0.4))
    assert time.monotonic() - started < 1.5


def test_silent_server_hits_the_read_timeout(server: str, connections: list[str]):
    started = time.monotonic()
    with pytest.raises(FetchTimeoutError, match="stopped sending data for 0.3 s"):
        fetch_url(f"{server}/stall", local(read_timeout=0.3))
    assert time.monotonic() - started < 1.2


def test_refused_connection_is_a_fetch_error(connections: list[str]):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchError, match="Could not connect to 127.0.0.1"):
        fetch_url(f"http://127.0.0.1:{port}/", local())


def test_unresolvable_host_is_a_fetch_error(monkeypatch: pytest.MonkeyPatch):
    def fail(*args: object, **kwargs: object) -> list:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(FetchError, match="The host nowhere.example does not exist"):
        fetch_url("http://nowhere.example/")


# --- status codes ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 500, 403, 503])
def test_non_2xx_is_a_status_error(server: str, connections: list[str], status: int):
    with pytest.raises(HTTPStatusError, match=f"answered {status}") as info:
        fetch_url(f"{server}/status/{status}", local())
    assert info.value.status == status
