"""Real servers for tests, each on a free loopback port in a temporary folder, stopped after:
redis-server, Orthanc (Debian's package), dcmtk's storescp, a pynetdicom Storage SCP, the node
(``dicom-node serve``) and workers."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pydicom
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt

from dicom_node.config import Destination
from dicom_node.tcp import LOOPBACK, listening
from dicom_node.tcp import free_loopback_port as free_port
from tests.conftest import REPO_ROOT, missing_installation, require_tool

DICOM_NODE = [str(Path(sys.executable).with_name("dicom-node"))]  # the installed command
DCMTK_NO_DELAY = {"TCP_NODELAY": "1"}  # DCMTK's run-time switch for TCP_NODELAY


def wait_until(condition, timeout: float, what: str, interval: float = 0.2):
    """Poll ``condition`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def log_mentions(path: Path, text: str) -> bool:
    """Whether the log at ``path`` exists and contains ``text``."""
    return path.exists() and text in path.read_text(errors="replace")


def stop(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM the process group, then SIGKILL if it does not exit."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


def spawn(command: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    """Start ``command`` in its own process group with output appended to ``log``."""
    stream = open(log, "ab")
    return subprocess.Popen(
        command, stdout=stream, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        cwd=REPO_ROOT, env={**os.environ, **(env or {})}, start_new_session=True,
    )


@contextmanager
def redis_server(folder: Path, port: int | None = None) -> Iterator[str]:
    """A real redis-server keeping nothing on disk, on ``port`` or a free one; yields its broker URL."""
    program = require_tool("redis-server")
    port = port or free_port()
    folder.mkdir(parents=True, exist_ok=True)
    process = spawn(
        [program, "--bind", LOOPBACK, "--port", str(port), "--dir", str(folder), "--save", "",
         "--appendonly", "no", "--daemonize", "no"],
        folder / "redis.log",
    )
    try:
        wait_until(lambda: listening(port), 20, "redis-server")
        yield f"redis://{LOOPBACK}:{port}/0"
    finally:
        stop(process)


class Orthanc:
    """A running Orthanc with REST helpers."""

    def __init__(self, http_port: int, dicom_port: int, ae_title: str) -> None:
        self.url = f"http://{LOOPBACK}:{http_port}"
        self.dicom_port = dicom_port
        self.ae_title = ae_title

    def request(self, method: str, path: str, body: bytes | dict | None = None) -> object:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        request = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=120) as response:
            payload = response.read()
        return json.loads(payload) if payload[:1] in (b"{", b"[") else payload

    def get(self, path: str) -> object:
        return self.request("GET", path)


# Where Debian's orthanc-dicomweb puts its plugin (a link to the versioned library in /usr/lib/orthanc).
DICOMWEB_PLUGINS = (
    Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so"),
    *sorted(Path("/usr/lib/orthanc").glob("libOrthancDicomWeb.so*")),
)


def dicomweb_options() -> dict:
    """``options`` for :func:`orthanc_server` that load Debian's DICOMweb plugin (orthanc-dicomweb)
    at /dicom-web/; skipped outside CI where it is not installed, a failure in CI."""
    plugin = next((path for path in DICOMWEB_PLUGINS if path.exists()), None)
    if plugin is None:
        missing_installation(
            "Orthanc's DICOMweb plugin not installed (bash deploy/install.sh installs orthanc-dicomweb)"
        )
    return {
        "Plugins": [str(plugin)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True, "WadoRoot": "/wado"},
    }


@contextmanager
def orthanc_server(
    folder: Path, modalities: dict[str, tuple[str, str, int] | dict], options: dict | None = None
) -> Iterator[Orthanc]:
    """Debian's Orthanc with a generated configuration; ``modalities``: name -> (AET, host, port)
    or Orthanc's object form; ``options``: more configuration (e.g. DICOM TLS, or
    :func:`dicomweb_options` for the DICOMweb plugin)."""
    program = require_tool("Orthanc")
    http_port, dicom_port = free_port(), free_port()
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "Name": "dicom-node-test",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomModalities": {name: peer if isinstance(peer, dict) else list(peer) for name, peer in modalities.items()},
        "Plugins": [],
        "StableAge": 1,
        **(options or {}),
    }
    (folder / "orthanc.json").write_text(json.dumps(config, indent=2))
    # Debian's Orthanc links the system DCMTK, which leaves Nagle's algorithm on unless told
    # otherwise; Orthanc's own builds turn it off. Run it as docs/operations.md advises.
    process = spawn([program, str(folder / "orthanc.json")], folder / "orthanc.log", env=DCMTK_NO_DELAY)
    try:
        wait_until(lambda: listening(http_port), 60, "Orthanc")
        yield Orthanc(http_port, dicom_port, "ORTHANC")
    finally:
        stop(process)


def node_status(spool: Path) -> list[dict]:
    """The journal as ``dicom-node status --json`` prints it."""
    result = subprocess.run(
        [*DICOM_NODE, "status", "--spool", str(spool), "--json"],
        capture_output=True, text=True, check=True, cwd=REPO_ROOT,
    )
    return json.loads(result.stdout)


@contextmanager
def storescp_server(
    folder: Path, ae_title: str, port: int | None = None, options: tuple[str, ...] = ()
) -> Iterator[int]:
    """dcmtk's storescp writing every received object to its own file (+uf), on ``port`` or a
    free one, with extra ``options`` (e.g. TLS); yields its port. Like Orthanc here, it runs with
    TCP_NODELAY (docs/operations.md): otherwise each response waits for a delayed acknowledgement."""
    program = require_tool("storescp")
    port = port or free_port()
    folder.mkdir(parents=True, exist_ok=True)
    command = [program, *options, "--aetitle", ae_title, "+uf", "--output-directory", str(folder), str(port)]
    process = spawn(command, folder.parent / f"storescp-{ae_title}.log", env=DCMTK_NO_DELAY)
    try:
        wait_until(lambda: listening(port), 20, "storescp")
        yield port
    finally:
        stop(process)


def c_store(
    path: Path, port: int, called_ae: str, calling_ae: str = "MODALITY", source: str = LOOPBACK
) -> int | None:
    """Send one Part 10 file with pynetdicom from the loopback address ``source`` (any of
    127.0.0.0/8); the C-STORE status, or None when the association was refused or aborted."""
    ds = pydicom.dcmread(path)
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    association = ae.associate(LOOPBACK, port, ae_title=called_ae, bind_address=(source, 0))
    if not association.is_established:
        return None
    status = association.send_c_store(ds)
    association.release()
    return getattr(status, "Status", None)


@contextmanager
def storage_scp(
    answer: int = 0x0000, sop_classes: list[str] | None = None, require_calling_ae: str | None = None
) -> Iterator[tuple[Destination, list]]:
    """A pynetdicom Storage SCP in this process for ``sop_classes`` (default: every storage class)
    in any transfer syntax, answering ``answer`` (and rejecting callers other than
    ``require_calling_ae`` if given); yields its Destination and what it received, as (SOP
    Instance UID, transfer syntax, encoded dataset) per C-STORE."""
    received: list[tuple[str, str, bytes]] = []

    def handle_store(event: evt.Event) -> int:
        request = event.request
        received.append((request.AffectedSOPInstanceUID, event.context.transfer_syntax, request.DataSet.getvalue()))
        return answer

    ae = AE(ae_title="PACS")
    if require_calling_ae is not None:
        ae.require_calling_aet = [require_calling_ae]
    for sop_class in sop_classes or [context.abstract_syntax for context in AllStoragePresentationContexts]:
        ae.add_supported_context(sop_class, ALL_TRANSFER_SYNTAXES)
    server = ae.start_server((LOOPBACK, 0), block=False, evt_handlers=[(evt.EVT_C_STORE, handle_store)])
    try:
        yield Destination.parse(f"PACS@{LOOPBACK}:{server.server_address[1]}"), received
    finally:
        server.shutdown()


@contextmanager
def node_process(
    folder: Path, arguments: list[str], command: str = "serve", env: dict | None = None, log_name: str = ""
) -> Iterator[subprocess.Popen]:
    """``dicom-node <command> ...`` as a subprocess with its log in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    process = spawn([*DICOM_NODE, command, *arguments], folder / f"{log_name or command}.log", env)
    try:
        yield process
    finally:
        stop(process)
