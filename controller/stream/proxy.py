"""The 0MQ proxy as its own process: publishers connect to `--in`, subscribers to `--out`.

    python -m controller.stream.proxy --in 127.0.0.1:5577 --out 127.0.0.1:5578 [--keys DIR]

With `--keys DIR` the subscriber side requires CURVE: the proxy's secret key is `DIR/server.key_secret`
and only clients whose public keys are in `DIR/clients/` are let in (`grainloop stream keys DIR` makes
them with `zmq.auth.create_certificates`). Prints one line, "proxy ready in=… out=…", once bound.
"""

from __future__ import annotations

import argparse
import select
import subprocess
import sys
import time
from pathlib import Path

from bluesky.callbacks.zmq import Proxy, ServerCurve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller.stream.proxy", description=__doc__.splitlines()[0])
    parser.add_argument("--in", dest="in_address", required=True, help="HOST:PORT publishers connect to")
    parser.add_argument("--out", dest="out_address", required=True, help="HOST:PORT subscribers connect to")
    parser.add_argument("--keys", type=Path, default=None, help="CURVE keys directory (server key, clients/)")
    args = parser.parse_args(argv)
    out_curve = None
    if args.keys is not None:
        secret = args.keys / "server.key_secret"
        clients = args.keys / "clients"
        if not secret.exists() or not clients.is_dir():
            parser.error(f"{args.keys} needs server.key_secret and a clients/ directory of public keys")
        out_curve = ServerCurve(secret_path=secret, client_public_keys=clients, allow=None)
    proxy = Proxy(args.in_address, args.out_address, out_curve=out_curve)
    print(f"proxy ready in={proxy.in_port} out={proxy.out_port}", flush=True)
    proxy.start()
    return 0


def start_proxy_process(
    in_address: str, out_address: str, keys: Path | None = None, timeout_s: float = 20.0
) -> subprocess.Popen:
    """The proxy in a child process, returned once it printed its ready line (else RuntimeError)."""
    cmd = [sys.executable, "-m", "controller.stream.proxy", "--in", in_address, "--out", out_address]
    if keys is not None:
        cmd += ["--keys", str(keys)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    line = ""
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)  # bounded: readline alone could block forever
        if ready:
            line = proc.stdout.readline()
            break
    if not line.startswith("proxy ready"):
        proc.kill()
        proc.wait(5)
        raise RuntimeError(f"the 0MQ proxy did not start within {timeout_s:g} s: {line}{proc.stdout.read()}".strip())
    return proc


if __name__ == "__main__":
    raise SystemExit(main())
