"""Serve the OHIF Viewer's prebuilt dist/ and proxy /dicom-web/ to Orthanc's DICOMweb plugin, on one
loopback origin (no CORS needed). Standard library only.

    python3 deploy/ohif/serve.py --orthanc http://127.0.0.1:8042 --port 3000
    then open http://127.0.0.1:3000/viewer?StudyInstanceUIDs=<Study Instance UID>

Every path under /dicom-web/ goes to <orthanc>/dicom-web/ (the plugin's default root) with the
browser's Host header, so the URLs Orthanc writes into its answers point back at this proxy.
/app-config.js is this folder's app-config.js (a DICOMweb data source at /dicom-web); any other
path is a file of dist/ or, for the viewer's own routes (/viewer, ...), dist/index.html.
"""

import argparse
import base64
import http.client
import posixpath
import sys
import urllib.parse
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

HERE = Path(__file__).resolve().parent
DIST = HERE / "node_modules" / "@ohif" / "app" / "dist"
CONFIG = HERE / "app-config.js"
PROXIED = "/dicom-web/"
# Hop-by-hop headers (RFC 9110 7.6.1) are not forwarded either way.
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade",
}


class Handler(SimpleHTTPRequestHandler):
    """Static files of ``dist``, the viewer's routes as index.html, /dicom-web/ proxied."""

    protocol_version = "HTTP/1.1"
    extensions_map: ClassVar[dict[str, str]] = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
        ".json": "application/json", ".css": "text/css", ".svg": "image/svg+xml", ".woff2": "font/woff2",
    }
    dist: Path = DIST
    config: Path = CONFIG
    orthanc: urllib.parse.SplitResult
    authorization: str | None = None  # HTTP basic authentication towards Orthanc
    quiet = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=str(self.dist), **kwargs)

    # --- static files ---------------------------------------------------------------------------
    def translate_path(self, path: str) -> str:
        route = urllib.parse.urlsplit(path).path
        if route == "/app-config.js":
            return str(self.config)
        translated = super().translate_path(path)
        if Path(translated).is_file():
            return translated
        return str(self.dist / "index.html")  # a route of the single-page application

    def end_headers(self) -> None:
        if not getattr(self, "_proxying", False):
            # Cross-origin isolation lets the viewer use SharedArrayBuffer (as OHIF's dev server does).
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
            self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def proxied(self) -> bool:
        """Whether the request is for DICOMweb: its normalised path stays under /dicom-web/ (a
        "/dicom-web/../" path must not reach the rest of Orthanc's REST API)."""
        route = urllib.parse.urlsplit(self.path).path
        decoded = urllib.parse.unquote(route)  # "%2e%2e/" is ".." too
        return route.startswith(PROXIED) and posixpath.normpath(decoded).startswith(PROXIED.rstrip("/"))

    def do_GET(self) -> None:
        if self.proxied():
            self.proxy()
        else:
            super().do_GET()

    def do_HEAD(self) -> None:
        if self.proxied():
            self.proxy()
        else:
            super().do_HEAD()

    def do_POST(self) -> None:
        if self.proxied():
            self.proxy()
        else:
            self.send_error(405)

    # --- the DICOMweb proxy ---------------------------------------------------------------------
    def proxy(self) -> None:
        self._proxying = True
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"authorization"}}
            if self.authorization:
                headers["Authorization"] = self.authorization
            connection = http.client.HTTPSConnection if self.orthanc.scheme == "https" else http.client.HTTPConnection
            upstream = connection(self.orthanc.hostname, self.orthanc.port, timeout=300)
            try:
                upstream.request(self.command, self.orthanc.path.rstrip("/") + self.path, body, headers)
                answer = upstream.getresponse()
                self.send_response(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                payload = answer.read()
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Cross-Origin-Resource-Policy", "same-origin")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
            finally:
                upstream.close()
        except (ConnectionError, OSError, http.client.HTTPException) as error:
            if not self.wfile.closed:
                self.send_error(502, f"Orthanc unreachable: {error}")
        finally:
            self._proxying = False

    def log_message(self, format: str, *args) -> None:
        if not self.quiet:
            super().log_message(format, *args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--orthanc", default="http://127.0.0.1:8042",
        help="Orthanc's HTTP address, with user:password@ if it asks for HTTP basic authentication",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    parser.add_argument("--port", type=int, default=3000, help="port to listen on (0: a free one)")
    parser.add_argument("--dist", type=Path, default=DIST, help="OHIF's dist/ (npm ci in deploy/ohif)")
    parser.add_argument("--config", type=Path, default=CONFIG, help="the app-config.js to serve")
    parser.add_argument("--quiet", action="store_true", help="no access log")
    options = parser.parse_args(argv)
    if not (options.dist / "index.html").is_file():
        sys.exit(f"OHIF not found in {options.dist}: run `npm ci` in {HERE} (deploy/install.sh does)")
    orthanc = urllib.parse.urlsplit(options.orthanc)
    authorization = None
    if orthanc.username is not None:  # --orthanc http://user:password@host:port
        user, password = (urllib.parse.unquote(part or "") for part in (orthanc.username, orthanc.password))
        authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    handler = type("OhifHandler", (Handler,), {
        "dist": options.dist.resolve(), "config": options.config.resolve(), "orthanc": orthanc,
        "authorization": authorization, "quiet": options.quiet,
    })
    server = ThreadingHTTPServer((options.host, options.port), handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    shown = orthanc._replace(netloc=orthanc.netloc.rpartition("@")[2])  # without the credentials
    target = f"{urllib.parse.urlunsplit(shown).rstrip('/')}/dicom-web/"
    print(f"OHIF at http://{host}:{port}/ (DICOMweb proxied to {target})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
