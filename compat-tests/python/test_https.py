"""HTTPS (`serve --tls`): HTTPS and plain HTTP on the one --listen port (a first byte 0x16 is a
TLS client hello). Without --tls-cert/--tls-key the server makes `<data-dir>/tls/ca.pem` (a
local CA kept across restarts), `cert.pem` (localhost, 127.0.0.1, ::1 and --tls-names, chain
including the CA) and `key.pem` (0600). Clients trust ca.pem: boto3/pyqldb `verify=`, and
AWS_CA_BUNDLE for the AWS CLI and botocore.

The harness polls /health over plain HTTP, which is served on the TLS port as well."""

import os
import pathlib
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import time

import pytest
from botocore.exceptions import SSLError
from pyqldb.driver.qldb_driver import QldbDriver

from conftest import make_client
from qldb_harness import Server, client_env
from qldb_session_helpers import LIST_TABLES, run
from qldb_test_utils import ACCESS_KEY, REGION, SECRET_KEY, dedicated_server, new_name

LOOPBACK_SANS = {("DNS", "localhost"), ("IP Address", "127.0.0.1"), ("IP Address", "0:0:0:0:0:0:0:1")}


def https(server, host="127.0.0.1") -> str:
    return f"https://{host}:{server.port}"


def tls_file(server, name) -> pathlib.Path:
    return pathlib.Path(server.data_dir) / "tls" / name


def ca_path(server) -> str:
    return str(tls_file(server, "ca.pem"))


def sans(path) -> set:
    return set(ssl._ssl._test_decode_cert(str(path)).get("subjectAltName", ()))


def pem_blocks(path) -> list:
    """The DER of every certificate in a PEM file, in order."""
    text = pathlib.Path(path).read_text()
    out = []
    for part in text.split("-----BEGIN CERTIFICATE-----")[1:]:
        body = part.split("-----END CERTIFICATE-----")[0]
        out.append(ssl.PEM_cert_to_DER_cert("-----BEGIN CERTIFICATE-----" + body + "-----END CERTIFICATE-----\n"))
    return out


def peer_cert_der(server, server_hostname, cafile) -> bytes:
    """Handshakes with 127.0.0.1:port as `server_hostname`, verifying against `cafile`."""
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        with ctx.wrap_socket(sock, server_hostname=server_hostname) as tls:
            return tls.getpeercert(binary_form=True)


def tls_client(server, host="127.0.0.1", verify=None, service="qldb"):
    return make_client(https(server, host), service=service, verify=ca_path(server) if verify is None else verify)


def tls_driver(server, ledger, **kwargs):
    kwargs.setdefault("verify", ca_path(server))
    return QldbDriver(ledger_name=ledger, endpoint_url=https(server), region_name=REGION,
                      aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, **kwargs)


def create_active(client, name):
    client.create_ledger(Name=name, PermissionsMode="ALLOW_ALL", DeletionProtection=False)
    deadline = time.monotonic() + 30
    while client.describe_ledger(Name=name)["State"] != "ACTIVE":
        assert time.monotonic() < deadline, f"ledger {name} never became ACTIVE"
        time.sleep(0.05)
    return name


@pytest.fixture(scope="module")
def tls_server():
    with dedicated_server(["--tls"]) as s:
        yield s


@pytest.fixture
def no_ca_env(monkeypatch):
    """No CA bundle from the environment (botocore reads AWS_CA_BUNDLE / REQUESTS_CA_BUNDLE)."""
    for k in ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(k, raising=False)


# ---------------------------------------------------------------- generated files


def test_generated_certificate_files(tls_server):
    for name in ("ca.pem", "cert.pem", "key.pem"):
        assert tls_file(tls_server, name).is_file(), name
    assert stat.S_IMODE(os.stat(tls_file(tls_server, "key.pem")).st_mode) == 0o600
    assert LOOPBACK_SANS <= sans(tls_file(tls_server, "cert.pem"))
    # The chain: the server certificate first, then the CA itself.
    ca = pem_blocks(tls_file(tls_server, "ca.pem"))
    chain = pem_blocks(tls_file(tls_server, "cert.pem"))
    assert len(ca) == 1 and len(chain) >= 2, (len(ca), len(chain))
    assert chain[-1] == ca[0]
    assert chain[0] != ca[0]
    leaf = ssl._ssl._test_decode_cert(str(tls_file(tls_server, "cert.pem")))
    ca_info = ssl._ssl._test_decode_cert(ca_path(tls_server))
    assert leaf["issuer"] == ca_info["subject"]
    # What is served is that leaf, and it verifies against ca.pem for every loopback name.
    for host in ("localhost", "127.0.0.1", "::1"):
        assert peer_cert_der(tls_server, host, ca_path(tls_server)) == chain[0], host


# ---------------------------------------------------------------- clients over HTTPS


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_boto3_control_plane_over_https(tls_server, no_ca_env, host):
    c = tls_client(tls_server, host)
    name = new_name("tls")
    created = c.create_ledger(Name=name, PermissionsMode="ALLOW_ALL", DeletionProtection=False,
                              Tags={"via": "https"})
    assert created["Name"] == name
    assert c.describe_ledger(Name=name)["Name"] == name
    assert name in [l["Name"] for l in c.list_ledgers(MaxResults=100)["Ledgers"]]
    assert c.list_tags_for_resource(ResourceArn=created["Arn"])["Tags"] == {"via": "https"}
    c.update_ledger(Name=name, DeletionProtection=False)
    c.delete_ledger(Name=name)


def test_pyqldb_over_https_with_verify(tls_server, no_ca_env):
    ledger = create_active(tls_client(tls_server), new_name("tls"))
    with tls_driver(tls_server, ledger) as driver:
        run(driver, "CREATE TABLE Person")
        ids = run(driver, "INSERT INTO Person ?", [{"name": "Ann", "age": 30}, {"name": "Bob", "age": 41}])
        assert len(ids) == 2
        assert sorted(r["name"] for r in run(driver, "SELECT * FROM Person")) == ["Ann", "Bob"]

        def two_statements(txn):
            txn.execute_statement("UPDATE Person AS p SET p.age = 31 WHERE p.name = ?", "Ann")
            return list(txn.execute_statement("SELECT VALUE p.age FROM Person AS p WHERE p.name = 'Ann'"))

        assert driver.execute_lambda(two_statements) == [31]  # commit digest checked
        assert list(driver.list_tables()) == ["Person"]
        assert run(driver, LIST_TABLES) == ["Person"]


def test_pyqldb_over_https_with_aws_ca_bundle(tls_server, no_ca_env, monkeypatch):
    ledger = create_active(tls_client(tls_server), new_name("tls"))
    monkeypatch.setenv("AWS_CA_BUNDLE", ca_path(tls_server))
    with tls_driver(tls_server, ledger, verify=None) as driver:
        run(driver, "CREATE TABLE T")
        run(driver, "INSERT INTO T VALUE {'a': 1}")
        assert run(driver, "SELECT VALUE t.a FROM T AS t") == [1]


def test_aws_cli_over_https_with_aws_ca_bundle(tls_server):
    env = client_env(tls_server)
    env["AWS_CA_BUNDLE"] = ca_path(tls_server)
    for k in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        env.pop(k, None)
    name = new_name("cli")
    create_active(tls_client(tls_server), name)
    base = [sys.executable, "-m", "awscli"]
    p = subprocess.run(base + ["qldb", "list-ledgers", "--endpoint-url", https(tls_server, "localhost")],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert name in p.stdout
    # Without the CA the CLI refuses the certificate.
    del env["AWS_CA_BUNDLE"]
    p = subprocess.run(base + ["qldb", "list-ledgers", "--endpoint-url", https(tls_server)],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode != 0
    assert "SSL" in p.stderr or "certificate" in p.stderr, p.stderr


def test_untrusted_ca_is_an_ssl_error(tls_server, no_ca_env):
    for host in ("127.0.0.1", "localhost"):
        c = make_client(https(tls_server, host))  # default trust store, without ca.pem
        with pytest.raises(SSLError):
            c.list_ledgers()
    # Nor does a plain TLS client with the system trust store.
    with pytest.raises(ssl.SSLCertVerificationError):
        peer_cert_der(tls_server, "localhost", cafile=ssl.get_default_verify_paths().cafile or None)


def test_plain_http_on_the_same_port(tls_server):
    assert tls_server.endpoint.startswith("http://")
    assert tls_server.health()["status"] == "ok"
    name = new_name("plain")
    plain = make_client(tls_server.endpoint)
    plain.create_ledger(Name=name, PermissionsMode="ALLOW_ALL", DeletionProtection=False)
    # Both schemes see the same state.
    assert tls_client(tls_server).describe_ledger(Name=name)["Name"] == name
    plain.delete_ledger(Name=name)


def test_garbage_hellos_and_silent_connections_do_not_hurt(tls_server, no_ca_env):
    # A connection held open without a byte must not block anyone else.
    idle_plain = socket.create_connection(("127.0.0.1", tls_server.port), timeout=5)
    idle_tls = socket.create_connection(("127.0.0.1", tls_server.port), timeout=5)
    idle_tls.sendall(b"\x16\x03\x01")  # the start of a TLS record, then nothing
    try:
        assert tls_server.health()["status"] == "ok"
        tls_client(tls_server).list_ledgers()
        for junk in (b"\x16\x03\x01\x00\x05hello", b"\x16" + os.urandom(600), b"\x16\xff\xff\xff\xff",
                     b"\x16\x03\x03\x40\x00" + b"\x01" * 64, b"", b"\x00\x01\x02\x03"):
            with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as s:
                if junk:
                    s.sendall(junk)
                s.shutdown(socket.SHUT_WR)
                try:
                    s.recv(4096)  # an alert, an HTTP 400 or just the close
                except OSError:
                    pass
        # A real handshake abandoned right after it completes.
        ctx = ssl.create_default_context(cafile=ca_path(tls_server))
        with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname="localhost"):
                pass
    finally:
        idle_plain.close()
        idle_tls.close()
    assert tls_server.health()["status"] == "ok"
    assert isinstance(tls_client(tls_server).list_ledgers()["Ledgers"], list)
    assert tls_server.proc.poll() is None


# ---------------------------------------------------------------- restarts and given files


def test_restart_keeps_the_ca_and_tls_names_reissue_the_certificate(no_ca_env):
    s = Server(extra_args=["--tls"]).start()
    try:
        ca_before = tls_file(s, "ca.pem").read_bytes()
        cert_before = tls_file(s, "cert.pem").read_bytes()
        name = new_name("rs")
        tls_client(s).create_ledger(Name=name, PermissionsMode="ALLOW_ALL", DeletionProtection=False)

        s.restart()
        assert tls_file(s, "ca.pem").read_bytes() == ca_before
        assert tls_client(s).describe_ledger(Name=name)["Name"] == name  # still verifies against the old CA
        assert tls_client(s, "localhost").list_ledgers()["Ledgers"]

        s.extra_args = ["--tls", "--tls-names", "other.test"]
        s.restart()
        assert tls_file(s, "ca.pem").read_bytes() == ca_before
        cert_after = tls_file(s, "cert.pem").read_bytes()
        assert cert_after != cert_before
        names = sans(tls_file(s, "cert.pem"))
        assert ("DNS", "other.test") in names, names
        assert LOOPBACK_SANS <= names, names
        assert stat.S_IMODE(os.stat(tls_file(s, "key.pem")).st_mode) == 0o600
        # The new certificate is what is served, for the new name too, under the same CA.
        assert peer_cert_der(s, "other.test", ca_path(s)) == pem_blocks(tls_file(s, "cert.pem"))[0]
        assert tls_client(s).describe_ledger(Name=name)["Name"] == name
    finally:
        s.close()


def test_given_cert_and_key_files_are_served(tls_server, tmp_path, no_ca_env):
    cert = tmp_path / "given-cert.pem"
    key = tmp_path / "given-key.pem"
    shutil.copyfile(tls_file(tls_server, "cert.pem"), cert)
    shutil.copyfile(tls_file(tls_server, "key.pem"), key)
    ca = ca_path(tls_server)
    with dedicated_server(["--tls", "--tls-cert", str(cert), "--tls-key", str(key)]) as s:
        assert peer_cert_der(s, "localhost", ca) == pem_blocks(cert)[0]
        for host in ("127.0.0.1", "localhost"):
            c = make_client(https(s, host), verify=ca)
            name = new_name("given")
            c.create_ledger(Name=name, PermissionsMode="ALLOW_ALL", DeletionProtection=False)
            assert c.describe_ledger(Name=name)["Name"] == name
        assert make_client(s.endpoint).list_ledgers()["Ledgers"]  # plain HTTP as well
