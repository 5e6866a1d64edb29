"""TLS test servers: Debian's PostgreSQL 15 with a CA made at test time, and a non-TLS fake.

The embedded PostgreSQL 18 wheel has no OpenSSL, so the TLS tests run the binaries of
Debian's ``postgresql-15`` package (as the ``postgres`` OS user, on ``127.0.0.1`` and a
random port).  Certificates come from the ``cryptography`` package:

* ``ca.crt`` — the throw-away CA the clients trust;
* ``server.crt``/``server.key`` — signed by it, for ``DNS:localhost`` only (so
  ``127.0.0.1`` is a hostname mismatch);
* ``other-ca.crt`` — a second, unrelated self-signed CA (an "unknown CA" for clients that
  trust only it).

``pg_hba.conf`` accepts TCP only over TLS with SCRAM passwords (``hostnossl … reject``);
the admin connects over the unix socket.  The ``postgres`` superuser is only ever used as
the admin.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.reliability.harness import LOOPBACK, PgCluster, chown_tree

PG15_BIN = Path("/usr/lib/postgresql/15/bin")
PG15_OS_USER = "postgres"


def pg15_available() -> bool:
    """Whether Debian's PostgreSQL 15 server binaries are installed."""
    return all((PG15_BIN / name).is_file() for name in ("postgres", "initdb", "pg_ctl"))


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the certificates made for one test session."""

    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _self_signed_ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_tls_files(folder: Path, *, dns_names: tuple[str, ...] = ("localhost",)) -> TlsFiles:
    """A CA, a server certificate it signs (for ``dns_names`` only) and an unrelated CA."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _self_signed_ca("biotech-ma-db test CA")
    _, other_cert = _self_signed_ca("some other CA")
    server_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(dns_names[0]))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in dns_names]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    files = TlsFiles(
        ca=folder / "ca.crt",
        other_ca=folder / "other-ca.crt",
        server_cert=folder / "server.crt",
        server_key=folder / "server.key",
    )
    files.ca.write_bytes(ca_cert.public_bytes(pem))
    files.other_ca.write_bytes(other_cert.public_bytes(pem))
    files.server_cert.write_bytes(server_cert.public_bytes(pem))
    files.server_key.write_bytes(
        server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    files.server_key.chmod(0o600)
    return files


class Pg15Cluster(PgCluster):
    """:class:`PgCluster` on Debian's PostgreSQL 15 binaries, run as ``postgres``."""

    def _bin(self, name: str) -> str:
        return str(PG15_BIN / name)


_HBA = """\
# biotech-ma-db TLS tests: the admin uses the unix socket; TCP only over TLS with SCRAM.
local   all   all                     trust
hostssl all   all   127.0.0.1/32      scram-sha-256
hostnossl all all   127.0.0.1/32      reject
"""


@dataclass
class TlsPostgres:
    """A running PostgreSQL 15 that only accepts TLS over TCP.

    Attributes:
        cluster: The underlying cluster (``port``, ``socket_dir``, ``log_file``).
        tls: The certificates (``tls.ca`` is the CA clients should trust).
    """

    root: Path
    cluster: Pg15Cluster = field(init=False)
    tls: TlsFiles = field(init=False)

    def start(self) -> TlsPostgres:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        self.tls = make_tls_files(self.root / "tls")
        self.cluster = Pg15Cluster(
            self.root / "pg15",
            user=PG15_OS_USER,
            settings={
                "ssl": "on",
                "ssl_min_protocol_version": "TLSv1.2",
                "password_encryption": "scram-sha-256",
                "log_statement": "all",
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
            },
        )
        self.cluster.init()
        data = self.cluster.data_dir
        shutil.copy(self.tls.server_cert, data / "server.crt")
        shutil.copy(self.tls.server_key, data / "server.key")
        (data / "server.key").chmod(0o600)
        (data / "pg_hba.conf").write_text(_HBA)
        chown_tree(data, PG15_OS_USER)
        self.cluster.start()
        return self

    @property
    def port(self) -> int:
        return self.cluster.port

    async def admin(self, database: str = "postgres") -> asyncpg.Connection:
        """A superuser connection over the unix socket (no TLS needed there)."""
        return await asyncpg.connect(
            host=str(self.cluster.socket_dir),
            port=self.cluster.port,
            user="postgres",
            database=database,
            timeout=10,
        )

    def admin_url(self, database: str = "postgres") -> str:
        """asyncpg URL of the superuser over the unix socket."""
        socket_dir = self.cluster.socket_dir
        return f"postgresql+asyncpg://postgres@/{database}?host={socket_dir}&port={self.port}"

    def server_log(self) -> str:
        return self.cluster.log_file.read_text(errors="replace")

    def stop(self) -> None:
        self.cluster.destroy()
        shutil.rmtree(self.root, ignore_errors=True)


# -- a server that refuses TLS, the way a non-TLS PostgreSQL does -------------------------

_SSL_REQUEST = 80877103
_AUTH_CLEARTEXT = 3


@dataclass
class NonTlsServer:
    """Answers ``SSLRequest`` with ``N`` (no TLS), as a PostgreSQL without TLS would.

    A client that falls back to plain text then sends its StartupMessage; the fake asks
    for a clear-text password (``AuthenticationCleartextPassword``) and records whatever
    arrives, so a test can show what ``sslmode=prefer`` gives away.

    Attributes:
        ssl_requests: How many ``SSLRequest`` messages arrived.
        plaintext_startups: How many clients went on without TLS.
        captured: Bytes received after the fallback (startup packet, password message).
    """

    port: int = 0
    ssl_requests: int = 0
    plaintext_startups: int = 0
    captured: list[bytes] = field(default_factory=list)
    _server: asyncio.Server | None = None

    async def start(self) -> NonTlsServer:
        self._server = await asyncio.start_server(self._handle, LOOPBACK, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            header = await asyncio.wait_for(reader.readexactly(8), 5)
            length, code = struct.unpack("!ii", header)
            if code == _SSL_REQUEST:
                self.ssl_requests += 1
                writer.write(b"N")
                await writer.drain()
                header = await asyncio.wait_for(reader.readexactly(8), 5)
                length, code = struct.unpack("!ii", header)
            body = await asyncio.wait_for(reader.readexactly(length - 8), 5)
            self.plaintext_startups += 1
            self.captured.append(header + body)
            writer.write(b"R" + struct.pack("!ii", 8, _AUTH_CLEARTEXT))
            await writer.drain()
            kind = await asyncio.wait_for(reader.readexactly(5), 5)
            (size,) = struct.unpack("!i", kind[1:])
            self.captured.append(kind + await asyncio.wait_for(reader.readexactly(size - 4), 5))
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError, OSError):
            pass
        finally:
            writer.close()


def ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
