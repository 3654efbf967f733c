#!/usr/bin/env python3
"""Replays two attacks of issue 12 against a release build and prints the figures beside
their targets (a quick measurement; the hostile-load suite is `spog-bench abuse`):

- slowloris: N half-sent requests held open, then `/healthz` latency (target <= 1 s);
- stalled downloads: N `.cast` downloads whose clients never read, then login and audit
  export latency (target <= 2 s).

    cargo build --release -p spog
    scripts/abuse-transport.py [--database-url postgres://...] [--slowloris 1000] [--stalled 600]

The server is started with `max_downloads_per_caller` raised so that one caller can stall
all N downloads (the default cap of 8 per credential would refuse most of them: the
measurement is of what a stalled download costs everyone else).
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

PASSWORD = "correct horse battery staple"
EMAIL = "admin@example.com"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None, token=None, raw=False):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=60) as response:
        payload = response.read()
        return payload if raw else json.loads(payload or b"null")


def timed(work):
    started = time.monotonic()
    work()
    return time.monotonic() - started


def summary(name, samples, target):
    worst = max(samples)
    verdict = "ok" if worst <= target else "MISSED"
    print(f"  {name}: p50 {statistics.median(samples) * 1000:.0f} ms, "
          f"max {worst * 1000:.0f} ms (target <= {target * 1000:.0f} ms) {verdict}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/release/spog")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--slowloris", type=int, default=1000)
    parser.add_argument("--stalled", type=int, default=600)
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="spog-abuse-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, SPOG_LISTEN=f"127.0.0.1:{port}", SPOG_DATA_DIR=data_dir,
               SPOG_ADMIN_EMAIL=EMAIL, SPOG_ADMIN_PASSWORD=PASSWORD,
               SPOG_MAX_DOWNLOADS_PER_CALLER="100000", SPOG_LOG="warn")
    if args.database_url:
        env["SPOG_DATABASE_URL"] = args.database_url
    server = subprocess.Popen([args.binary, "serve"], env=env, stdout=subprocess.DEVNULL)
    held = []
    try:
        for _ in range(300):
            try:
                call(base, "GET", "/healthz", raw=True)
                break
            except OSError:
                time.sleep(0.1)
        admin = call(base, "POST", "/api/v1/auth/login",
                     {"email": EMAIL, "password": PASSWORD})["token"]
        backend = "postgres" if args.database_url else "sqlite"
        print(f"spog at {base} on {backend}")

        print(f"slowloris: {args.slowloris} half-sent requests held open")
        for _ in range(args.slowloris):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: spog\r\n")
            held.append(s)
        time.sleep(0.5)
        samples = [timed(lambda: call(base, "GET", "/healthz", raw=True)) for _ in range(20)]
        summary("/healthz", samples, 1.0)
        for s in held:
            s.close()
        held.clear()

        print(f"stalled downloads: {args.stalled} .cast downloads never read")
        organization = call(base, "GET", "/api/v1/organizations", token=admin)[0]["id"]
        host = call(base, "POST", "/api/v1/hosts",
                    {"organization_id": organization, "hostname": "abuse-1"}, token=admin)["id"]
        user = call(base, "GET", "/api/v1/auth/me", token=admin)["user_id"]
        gateway = call(base, "POST", "/api/v1/api-tokens",
                       {"name": "gateway", "actor_type": "agent",
                        "permissions": ["session_recordings.write"]}, token=admin)["token"]
        session = call(base, "POST", "/api/v1/terminal/sessions",
                       {"host_id": host, "user_id": user, "shell": "sh", "width": 80,
                        "height": 24}, token=gateway)
        line = "x" * 1000
        for batch in range(24):
            events = [[batch + i / 1000, "o", line] for i in range(500)]
            call(base, "POST", f"/api/v1/terminal/sessions/{session['id']}/events", events,
                 token=gateway)
        call(base, "POST", f"/api/v1/terminal/sessions/{session['id']}/end", {}, token=gateway)
        request = (f"GET /api/v1/terminal/recordings/{session['recording_id']}/cast HTTP/1.1\r\n"
                   f"Host: spog\r\nAuthorization: Bearer {admin}\r\n\r\n").encode()
        for _ in range(args.stalled):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", port))
            s.sendall(request)
            first = s.recv(12)
            assert first == b"HTTP/1.1 200", first
            held.append(s)
        time.sleep(1.0)
        logins = [timed(lambda: call(base, "POST", "/api/v1/auth/login",
                                     {"email": EMAIL, "password": PASSWORD}))
                  for _ in range(5)]
        exports = [timed(lambda: call(base, "GET", "/api/v1/audit-logs/export?format=jsonl",
                                      token=admin, raw=True))
                   for _ in range(5)]
        summary("login", logins, 2.0)
        summary("export", exports, 2.0)
    finally:
        for s in held:
            s.close()
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
