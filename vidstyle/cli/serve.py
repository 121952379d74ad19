"""`vidstyle serve`: the local web page and its JSON API (vidstyle.serve), on uvicorn."""

from __future__ import annotations

import ipaddress
import re
import secrets
import socket
import sys
import threading
import webbrowser

from vidstyle.errors import ConfigError
from vidstyle.infer.inferconfig import EngineConfig

DEFAULT_PORT = 7860
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def register(sub) -> None:
    from vidstyle.serve import DEFAULT_KEEP_HOURS

    p = sub.add_parser(
        "serve", help="a local web page to stylize videos and photos (and its JSON API)",
        description="Start a web page on this machine: drop a video or photo, pick a style, see a "
                    "preview frame, run the job, compare and download. Listens on 127.0.0.1 only "
                    "unless --host says otherwise. From another machine, prefer an SSH tunnel: "
                    f"ssh -L {DEFAULT_PORT}:127.0.0.1:{DEFAULT_PORT} HOST (docs/serve.md).")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default %(default)s: this machine only); anything "
                        "else lets whoever reaches the port use it: add --token")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s; 0: any free)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.add_argument("--token", nargs="?", const="", metavar="TOKEN",
                   help="require TOKEN on every API call (the printed URL carries it); "
                        "--token alone makes a random one")
    p.add_argument("--max-upload", default="2G", metavar="SIZE",
                   help="largest upload, e.g. 500M or 2G (default %(default)s); larger ones get 413")
    p.add_argument("--keep-hours", type=float, default=DEFAULT_KEEP_HOURS, metavar="H",
                   help="delete finished jobs and their files H hours after they end "
                        "(default %(default)g; all are deleted when the server stops)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default %(default)s)")
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="CPU threads for the network (default: all cores)")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="print the page's URL and warnings only (no server log)")
    p.set_defaults(func=run_serve)


def parse_size(text: str) -> int:
    """Bytes from "2G", "500M", "1.5GB", "1048576" (powers of 1000; ConfigError otherwise)."""
    match = _SIZE.match(text)
    if not match or float(match[1]) <= 0:
        raise ConfigError(f"--max-upload must be a size such as 500M or 2G, got '{text}'")
    scale = 1000 ** "_kmgt".index(match[2].lower() or "_")
    return int(float(match[1]) * scale)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, so that a port in use is one line here rather than a server's traceback."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        hint = "; choose another with --port" if exc.errno in (98, 48) else ""
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}){hint}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def page_url(host: str, port: int, token: str | None) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def run_serve(args) -> int:
    # Deferred: the web stack is needed by this command only, not by every `vidstyle` start.
    import uvicorn

    from vidstyle.cli.infer import DEFAULT_STABILIZE
    from vidstyle.serve.app import ServeSettings, create_app

    if args.keep_hours <= 0:
        raise ConfigError(f"--keep-hours must be > 0, got {args.keep_hours:g}")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be in 0..65535, got {args.port}")
    token = secrets.token_urlsafe(16) if args.token == "" else args.token
    loopback = is_loopback(args.host)
    settings = ServeSettings(max_upload=parse_size(args.max_upload), keep_hours=args.keep_hours,
                             token=token, default_stabilize=DEFAULT_STABILIZE,
                             engine=EngineConfig(device=args.device, threads=args.threads),
                             allowed_hosts=("127.0.0.1", "localhost", "::1") if loopback else None)
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    url = page_url(args.host, port, token)
    if not loopback:
        print(f"vidstyle: warning: listening on {args.host}: anyone who can reach port {port} can "
              f"upload files and use this machine's CPU{'' if token else ' (add --token)'}; an SSH "
              f"tunnel is safer (docs/serve.md)", file=sys.stderr)
    print(f"vidstyle: serving the page at {url}  (Ctrl-C stops it and deletes its jobs)", flush=True)
    if args.host in ("0.0.0.0", "::", "") and not args.quiet:
        print(f"vidstyle: from other machines: {url.replace('127.0.0.1', socket.gethostname(), 1)}",
              flush=True)
    if args.open:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    config = uvicorn.Config(create_app(settings), log_level="error" if args.quiet else "warning",
                            access_log=False, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])
    return 0
