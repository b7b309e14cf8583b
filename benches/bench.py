#!/usr/bin/env python3
"""klaxon benchmark: klaxon vs Prometheus Alertmanager vs a bare actix-web ceiling.

Run it through `benches/run` (see benches/README.md). Standard library only.

Everything is measured in one run, on loopback, and reported as medians of
several repetitions and as ratios against the baselines measured in the same
run, because a shared 2-core machine is noisy.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LUA = HERE / "replay.lua"
FIXTURES = REPO / "fixtures" / "slack"

SECRET = "bench-signing-secret"
TOKEN = "bench-verification-token"
READ = "bench-read-token"
WRITE = "bench-write-token"
HZ = os.sysconf("SC_CLK_TCK")

CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- setup


def need_install(names: list[str]) -> None:
    """apt-get install the Debian packages whose binary is missing (as root)."""
    binaries = {"wrk": "wrk", "prometheus-alertmanager": "prometheus-alertmanager", "linux-perf": "perf"}
    missing = [n for n in names if shutil.which(binaries.get(n, n)) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"bench: missing {', '.join(missing)}; run as root or apt-get install them")
    log(f"installing {' '.join(missing)} (apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True, env=env
    )
    # Debian may start the packaged Alertmanager service; we run our own instances.


def target_dir() -> Path:
    raw = os.environ.get("CARGO_TARGET_DIR")
    return Path(raw).resolve() if raw else REPO / "target"


def build(skip: bool) -> tuple[Path, Path]:
    tdir = target_dir()
    if not skip:
        log(f"building klaxon and examples/ceiling in release mode (target dir {tdir})")
        env = dict(os.environ, CARGO_TARGET_DIR=str(tdir))
        subprocess.run(
            ["cargo", "build", "--release", "--bin", "klaxon", "--example", "ceiling"],
            cwd=REPO,
            env=env,
            check=True,
        )
    klaxon, ceiling = tdir / "release" / "klaxon", tdir / "release" / "examples" / "ceiling"
    for b in (klaxon, ceiling):
        if not b.exists():
            sys.exit(f"bench: {b} not built")
    return klaxon, ceiling


_ports_given: set[int] = set()


def free_port() -> int:
    """A free loopback port not handed out before in this run. The kernel may
    give the same free port to two binds in a row, and then a server that
    cannot listen would pass its readiness check on the other's port."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port


# ---------------------------------------------------------------- processes


def call(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
         timeout: float = 30.0) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


class Server:
    def __init__(self, name: str, cmd: list[str], port: int, ready_path: str, logdir: Path,
                 env: dict | None = None):
        self.name, self.cmd, self.port, self.ready_path = name, cmd, port, ready_path
        self.env = env
        self.logfile = logdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> float:
        """Spawns the server; returns seconds from spawn to the first 200 on ready_path."""
        out = open(self.logfile, "ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                     env=self.env)
        out.close()
        while True:
            if self.proc.poll() is not None:
                tail = self.logfile.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")
            try:
                status, _, _ = call(self.port, "GET", self.ready_path, timeout=5)
                if status == 200:
                    return time.perf_counter() - t0
            except OSError:
                pass
            if time.perf_counter() - t0 > timeout:
                self.stop()
                raise RuntimeError(f"{self.name} not ready after {timeout}s")
            time.sleep(0.002)

    @property
    def pid(self) -> int:
        assert self.proc
        return self.proc.pid

    def cpu_ticks(self) -> int:
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)

    def status_kib(self, key: str) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def klaxon_server(binary: Path, port: int, data_dir: Path, logdir: Path, name: str = "klaxon") -> Server:
    env = dict(
        os.environ,
        KLAXON_LISTEN=f"127.0.0.1:{port}",
        KLAXON_DATA_DIR=str(data_dir),
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_VERIFICATION_TOKEN=TOKEN,
        KLAXON_READ_TOKENS=READ,
        KLAXON_WRITE_TOKENS=WRITE,
        # the per-client rate limits would throttle a load generator on one address
        KLAXON_SLACK_RATE_PER_SEC="0",
        KLAXON_API_RATE_PER_SEC="0",
        KLAXON_SHUTDOWN_GRACE_SECS="5",
        RUST_LOG="warn",
    )
    return Server(name, [str(binary), "serve"], port, "/readyz", logdir, env)


AM_CONFIG = """\
route:
  receiver: blackhole
  group_by: ['alertname']
receivers:
  - name: blackhole
"""


def alertmanager_server(port: int, work: Path, logdir: Path, name: str) -> Server:
    d = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))
    (d / "alertmanager.yml").write_text(AM_CONFIG)
    (d / "data").mkdir()
    cmd = [
        shutil.which("prometheus-alertmanager") or "prometheus-alertmanager",
        f"--config.file={d / 'alertmanager.yml'}",
        f"--storage.path={d / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    return Server(name, cmd, port, "/-/ready", logdir)


# ---------------------------------------------------------------- request pools


class Counter:
    """Unique numbers across the whole run (event ids, Slack ts, alert names)."""

    def __init__(self) -> None:
        self.n = 0

    def take(self, k: int) -> range:
        r = range(self.n, self.n + k)
        self.n += k
        return r


TEXTS = [
    "CRITICAL: checkout API returning 502s for all EU customers\\nstarted 09:41 UTC, see grafana",
    "high: payment worker queue backlog above 10k jobs\\nsince the 09:30 deploy, see runbook",
    "disk on db-replica-3 at 91% (low) and growing 2% per hour\\nno customer impact yet, ticket",
    "checkout latency p99 above 2s in us-east for 10 minutes\\nautoscaling did not kick in yet",
]


def events_template() -> str:
    d = json.loads((FIXTURES / "events" / "message.json").read_text())
    for k in ("authorizations", "event_context", "context_team_id"):
        d.pop(k, None)  # ~700 bytes left, like a typical message event
    s = json.dumps(d, separators=(",", ":"))
    s = s.replace("1732358500.000100", "{TS}").replace("Ev08MFMKH6", "{EID}")
    s = s.replace("6d1a7b6e-3c2f-4a4e-9c1b-2f7d8e9a0b1c", "{CMID}").replace("1732358500", "{ETIME}")
    text = json.dumps(d["event"]["text"])[1:-1]
    s = s.replace(text, "{TEXT}")
    return s.replace("{", "{{").replace("}", "}}").replace("{{TS}}", "{ts}").replace(
        "{{EID}}", "{eid}").replace("{{CMID}}", "{cmid}").replace("{{ETIME}}", "{etime}").replace(
        "{{TEXT}}", "{text}")


def slack_ts(n: int, base: int) -> str:
    return f"{base + n // 1_000_000}.{n % 1_000_000:06d}"


def gen_events(port: int, ids: range, base: int) -> list[bytes]:
    tmpl = events_template()
    now = int(time.time())
    key = SECRET.encode()
    head = (f"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/json\r\n")
    out = []
    for n in ids:
        ts = slack_ts(n, base)
        body = tmpl.format(ts=ts, eid=f"Ev{n:010d}", cmid=f"6d1a7b6e-3c2f-4a4e-9c1b-{n:012d}",
                           etime=base + n // 1_000_000, text=TEXTS[n % 4]).encode()
        sig = hmac.digest(key, b"v0:%d:%b" % (now, body), hashlib.sha256).hex()
        out.append(
            (f"{head}Content-Length: {len(body)}\r\nX-Slack-Request-Timestamp: {now}\r\n"
             f"X-Slack-Signature: v0={sig}\r\n\r\n").encode() + body)
    return out


def gen_outgoing(port: int, ids: range, base: int) -> list[bytes]:
    form = (FIXTURES / "outgoing" / "pagertree_outage_high.form").read_text().strip()
    form = re.sub(r"token=[^&]*", f"token={TOKEN}", form)
    form = re.sub(r"timestamp=[^&]*", "timestamp={ts}", form)
    head = (f"POST /slack/outgoing HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n")
    out = []
    for n in ids:
        body = form.replace("{ts}", slack_ts(n, base)).encode()
        out.append(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return out


def am_alert(n: int, starts: str) -> dict:
    return {
        "labels": {"alertname": f"BenchAlert{n}", "severity": "critical", "team": "checkout",
                   "instance": f"api-{n % 50}.eu-west-1.internal:9100", "job": "checkout-api"},
        "annotations": {
            "summary": "CRITICAL: checkout API returning 502s for all EU customers",
            "description": "started 09:41 UTC, see grafana; the error budget for the month burns "
                           "at 14x, rollback of release 2026.11.23-3 is in progress, customer "
                           "support has been told, status page updated by the incident lead",
            "runbook_url": "https://runbooks.example.internal/checkout/502",
        },
        "startsAt": starts,
        "generatorURL": f"http://prometheus.example.internal/graph?g0.expr=up%7Bjob%3D%22checkout%22%7D&n={n}",
    }


def gen_am(port: int, ids: range) -> list[bytes]:
    starts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    head = (f"POST /api/v2/alerts HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: application/json\r\n")
    out = []
    for n in ids:
        body = json.dumps([am_alert(n, starts)], separators=(",", ":")).encode()
        out.append(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return out


def get_request(port: int, path: str, headers: dict) -> bytes:
    h = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{h}\r\n".encode()


def write_pool(prefix: Path, reqs: list[bytes], threads: int) -> None:
    per = (len(reqs) + threads - 1) // threads
    for t in range(threads):
        with open(f"{prefix}.{t + 1}", "wb") as f:
            chunk = reqs[t * per:(t + 1) * per] or reqs[:1]
            f.write(b"\0".join(chunk) + b"\0")


# ---------------------------------------------------------------- load runs


@dataclass
class Run:
    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us_per_req: float | None
    exhausted: bool
    raw: dict = field(default_factory=dict)


def wrk(port: int, prefix: Path, mode: str, threads: int, conns: int, duration: float,
        server: Server | None) -> Run:
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{max(1, round(duration))}s", "--timeout", "10s",
           "-s", str(LUA), f"http://127.0.0.1:{port}", "--", str(prefix), mode]
    before = server.cpu_ticks() if server else 0
    p = subprocess.run(cmd, capture_output=True, text=True)
    after = server.cpu_ticks() if server else 0
    m = re.search(r"^BENCH_JSON (\{.*\})$", p.stdout, re.M)
    if p.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    r = json.loads(m.group(1))
    secs = r["duration_us"] / 1e6
    errors = sum(r[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
    cpu = ((after - before) * 1e6 / HZ / r["requests"]) if server and r["requests"] else None
    return Run(rps=r["requests"] / secs, requests=r["requests"], p50_ms=r["p50_us"] / 1000,
               p99_ms=r["p99_us"] / 1000, errors=errors, cpu_us_per_req=cpu,
               exhausted=r["exhausted"] > 0, raw=r)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# ---------------------------------------------------------------- klaxon helpers


def auth(extra: dict | None = None) -> dict:
    return {"authorization": f"Bearer {READ}", **(extra or {})}


def klaxon_total(port: int) -> int:
    status, _, body = call(port, "GET", "/api/v1/alerts/summary", headers=auth())
    if status != 200:
        raise RuntimeError(f"summary answered {status}: {body[:300]!r}")
    return json.loads(body)["total"]


SLOW_COMMIT = 'klaxon_store_flush_duration_seconds_bucket{le="0.025"}'


def klaxon_commits(port: int) -> tuple[float, float, float, float]:
    """(groups, changes, seconds, commits over 25 ms) so far, from klaxon's /metrics."""
    status, _, body = call(port, "GET", "/metrics", headers=auth())
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}: {body[:300]!r}")
    found = {}
    for line in body.decode().splitlines():
        name, _, value = line.rpartition(" ")
        if name in ("klaxon_store_group_size_count", "klaxon_store_group_size_sum",
                    "klaxon_store_flush_duration_seconds_sum", SLOW_COMMIT):
            found[name] = float(value)
    groups = found.get("klaxon_store_group_size_count", 0.0)
    return (groups, found.get("klaxon_store_group_size_sum", 0.0),
            found.get("klaxon_store_flush_duration_seconds_sum", 0.0),
            groups - found.get(SLOW_COMMIT, 0.0))


def check_klaxon(port: int, raw: bytes) -> None:
    """Fails the run unless klaxon takes a pre-generated request."""
    status, body = send_raw(port, raw)
    if status != 200 or b"error" in body:
        raise RuntimeError(f"klaxon rejected a pre-generated request: {status} {body[:300]!r}")


def send_raw(port: int, raw: bytes) -> tuple[int, bytes]:
    """Sends one pre-generated raw request (used to check a pool before a run)."""
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = dict(line.split(": ", 1) for line in lines[1:] if not line.lower().startswith("host:"))
    status, _, data = call(port, method, path, body=body, headers=headers)
    return status, data


# ---------------------------------------------------------------- restore files


def crockford(v: int) -> str:
    out = []
    for _ in range(13):
        out.append(CROCKFORD[v & 31])
        v >>= 5
    return "".join(reversed(out))


def iso_ms(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


URGENCIES = ["low", "medium", "high", "critical"]
HOT = 60  # alerts that are open + critical, spread evenly over the whole history


def alert_state(i: int, n: int) -> tuple[str, str]:
    """(status, urgency) of alert i (0 = oldest): mostly resolved, HOT open+critical."""
    if n >= HOT and i % (n // HOT) == (n // HOT) // 2 and i // (n // HOT) < HOT:
        return "open", "critical"
    urgency = URGENCIES[(i * 7) % 4]
    if urgency == "critical":
        urgency = "high"  # every other critical alert is resolved or acknowledged below
        if i % 3 == 0:
            urgency = "critical"
    if i % 101 == 0:
        return "open", ("high" if urgency == "critical" else urgency)
    if i % 53 == 0:
        return "acknowledged", urgency
    return "resolved", urgency


def write_restore_file(path: Path, n: int) -> list[str]:
    """A `klaxon backup`-format file with n alerts, 30 s apart, ending now. Returns the ids."""
    now_ms = int(time.time() * 1000) - 60_000
    start = now_ms - n * 30_000
    ids = []
    tmpl = (
        '{{"id":"{id}","seq":{seq},"created_at":"{at}","status":"{status}","urgency":"{urg}",'
        '"urgency_source":"message","title":"{title}","text":"{title}\\nstarted {at}, see grafana",'
        '"source":"events_api","slack":{{"team_id":"T061EG9R6","team_domain":null,'
        '"channel_id":"C0{ch:07d}","channel_name":null,"user_id":"U061F7AUR","user_name":null,'
        '"ts":"{ts}","thread_ts":null,"trigger_word":null,"event_id":"EvR{i:010d}"}},'
        '"acknowledged_at":{ack_at},"acknowledged_by":{ack_by},"resolved_at":{res_at},'
        '"resolved_by":{res_by},"notes":[]}}\n'
    )
    with open(path, "w", buffering=1 << 20) as f:
        f.write('{"klaxon_backup":1,"schema":1}\n')
        for i in range(n):
            ms = start + i * 30_000 + (i * 7919) % 1000
            aid = crockford(ms << 16)
            ids.append(aid)
            status, urg = alert_state(i, n)
            at = iso_ms(ms)
            later = f'"{iso_ms(ms + 120_000)}"'
            f.write(tmpl.format(
                id=aid, seq=i + 1, at=at, status=status, urg=urg,
                title=f"{urg.upper()}: service-{i % 97} error rate above SLO in eu-west-1 (#{i})",
                ch=i % 20, ts=f"{ms // 1000}.{(ms % 1000) * 1000:06d}", i=i,
                ack_at=later if status != "open" else "null",
                ack_by='"U0ONCALL1"' if status != "open" else "null",
                res_at=later if status == "resolved" else "null",
                res_by='"U0ONCALL1"' if status == "resolved" else "null",
            ))
        f.write(f'{{"klaxon_backup_end":{{"lines":{n},"seq":{n}}}}}\n')
    return ids


def disk_usage(path: Path) -> tuple[int, int]:
    """(bytes allocated on disk like du, apparent bytes)."""
    used = apparent = 0
    for root, _, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(root, name))
            used += st.st_blocks * 512
            apparent += st.st_size
    return used, apparent


# ---------------------------------------------------------------- phases


class Bench:
    def __init__(self, args: argparse.Namespace, klaxon: Path, ceiling: Path, work: Path, pools: Path):
        self.a, self.klaxon, self.ceiling, self.work, self.pools = args, klaxon, ceiling, work, pools
        self.logs = work / "logs"
        self.logs.mkdir(exist_ok=True)
        self.ids = Counter()
        self.base = int(time.time()) - 86_400  # Slack ts base for generated messages
        self.results: dict = {"config": {k: v for k, v in vars(args).items()}}
        self.skip = set(filter(None, args.skip.split(",")))
        # requests/s expected of each run, to size its request pool; raised when a pool runs out
        self.est: dict[str, float] = defaultdict(lambda: 30_000.0, alertmanager=25_000.0)

    # -- one timed load run against a target, repeated until its pool sufficed
    def load_run(self, key: str, server: Server, gen, cycle: bool, conns: int, duration: float,
                 check=None) -> Run:
        for attempt in range(4):
            if cycle:
                count = 20_000
            else:
                count = int(self.est[key] * duration * 1.3) + 2_000
            t0 = time.perf_counter()
            reqs = gen(count)
            prefix = self.pools / key
            write_pool(prefix, reqs, self.a.threads)
            first = reqs[0]
            del reqs
            gen_s = time.perf_counter() - t0
            if check:
                check(first)
            before = check_total = None
            if key.startswith("klaxon"):
                before = klaxon_total(server.port)
                commits_before = klaxon_commits(server.port)
            run = wrk(server.port, prefix, "cycle" if cycle else "once", self.a.threads, conns,
                      duration, server)
            if key.startswith("klaxon"):
                check_total = klaxon_total(server.port) - before
                run.raw["created"] = check_total
                groups, changes, secs, slow = (b - a for a, b in zip(commits_before, klaxon_commits(server.port)))
                run.raw["group_size"] = changes / groups if groups else None
                run.raw["commit_ms"] = 1000 * secs / groups if groups else None
                run.raw["slow_commits"] = int(slow)
            if not cycle:
                self.est[key] = max(self.est[key], run.rps)
            if run.exhausted:
                self.est[key] = max(self.est[key], run.rps) * 2
                log(f"  {key}: request pool ran out ({count}); again with a bigger pool")
                continue
            extra = ""
            if check_total is not None:
                extra = (f", created {check_total}, mean group {run.raw['group_size'] or 0:.1f} changes, "
                         f"mean commit {run.raw['commit_ms'] or 0:.3f} ms, "
                         f"{run.raw['slow_commits']} commits over 25 ms")
            if check_total is not None and check_total < run.requests * 0.98:
                log(f"  warning: {key}: {run.requests} answers but only {check_total} alerts created")
            log(f"  {key}: {run.rps:,.0f} req/s, p50 {run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms, "
                f"cpu {run.cpu_us_per_req or 0:.1f} us/req, errors {run.errors}{extra} "
                f"(pool of {count} made in {gen_s:.1f}s)")
            for p in self.pools.glob(f"{key}.*"):
                p.unlink()
            return run
        raise RuntimeError(f"{key}: request pool kept running out")

    def fresh_klaxon(self, name: str) -> Server:
        """A klaxon started on an empty data dir of its own."""
        k = klaxon_server(self.klaxon, free_port(), self.work / name, self.logs, name)
        k.start()
        return k

    def drop_store(self, k: Server) -> None:
        k.stop()
        if not self.a.keep:
            shutil.rmtree(self.work / k.name, ignore_errors=True)

    def klaxon_ingest(self, key: str, k: Server, gen) -> Run:
        """One timed ingest run against klaxon `k` with requests from `gen(port, ids, base)`."""
        return self.load_run(key, k, lambda n: gen(k.port, self.ids.take(n), self.base), False,
                             self.a.connections, self.a.duration, check=lambda raw: check_klaxon(k.port, raw))

    def ingest(self) -> None:
        a = self.a
        log(f"== ingest: wrk -t{a.threads} -c{a.connections} -d{a.duration}s, {a.reps} repetitions")
        cport = free_port()
        ceiling = Server("ceiling", [str(self.ceiling), f"127.0.0.1:{cport}"], cport, "/", self.logs)
        ceiling.start()
        runs: dict[str, list[Run]] = {k: [] for k in ("ceiling", "alertmanager", "klaxon_events", "klaxon_outgoing")}
        try:
            for rep in range(a.reps):
                log(f"-- repetition {rep + 1}/{a.reps}")
                runs["ceiling"].append(self.load_run(
                    "ceiling", ceiling, lambda k: gen_events(cport, self.ids.take(k), self.base),
                    True, a.connections, a.duration))
                # A fresh Alertmanager and a fresh klaxon store per repetition, so that no
                # run carries earlier runs' alerts (klaxon at 1,000,000: `klaxon_at`).
                aport = free_port()
                am = alertmanager_server(aport, self.work, self.logs, f"alertmanager-{rep + 1}")
                am.start()
                try:
                    runs["alertmanager"].append(self.load_run(
                        "alertmanager", am, lambda k: gen_am(aport, self.ids.take(k)), False,
                        a.connections, a.duration))
                finally:
                    am.stop()
                for key, gen in (("klaxon_events", gen_events), ("klaxon_outgoing", gen_outgoing)):
                    k = self.fresh_klaxon(f"{key}-{rep + 1}")
                    try:
                        runs[key].append(self.klaxon_ingest(key, k, gen))
                        if key == "klaxon_events" and rep == a.reps - 1:
                            self.results["ingest_store"] = self.store_after(k)
                    finally:
                        self.drop_store(k)
            if a.profile:
                k = self.fresh_klaxon("klaxon-profile")
                try:
                    self.profile(k, k.port)
                finally:
                    self.drop_store(k)
        finally:
            ceiling.stop()
        self.results["ingest"] = {k: [r.__dict__ for r in v] for k, v in runs.items()}
        self.runs = runs

    def store_after(self, k: Server) -> dict:
        """Alerts, RSS and disk use of a klaxon store that ingest filled."""
        total, rss = klaxon_total(k.port), k.status_kib("VmRSS")
        k.stop()
        used, apparent = disk_usage(self.work / k.name)
        return {"alerts": total, "rss_kib": rss, "du_bytes": used, "apparent_bytes": apparent}

    def profile(self, klaxon: Server, kport: int) -> None:
        secs = min(6.0, self.a.duration)
        log(f"-- profile: perf record (cpu-clock, DWARF call graphs) of klaxon under Events API ingest ({secs:.0f}s)")
        out = self.work / "perf.data"
        reqs = gen_events(kport, self.ids.take(int(self.est["klaxon_events"] * (secs + 3) * 1.3)), self.base)
        prefix = self.pools / "profile"
        write_pool(prefix, reqs, self.a.threads)
        del reqs
        cmd = ["perf", "record", "-e", "cpu-clock", "-F", "999", "--call-graph", "dwarf,16384",
               "-p", str(klaxon.pid), "-o", str(out), "--", "sleep", str(secs)]
        perf = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(self.logs / "perf.log", "wb"))
        time.sleep(0.3)
        try:
            wrk(kport, prefix, "once", self.a.threads, self.a.connections, secs + 1, None)
        finally:
            perf.wait()
            for p in self.pools.glob("profile.*"):
                p.unlink()
        if not out.exists():
            self.results["profile"] = {"error": (self.logs / "perf.log").read_text(errors="replace")[-500:]}
            log("  perf record failed: see logs/perf.log")
            return
        log("  perf report (takes a little while)")

        def perf_report(*args: str) -> list[tuple[float, float | None, str]]:
            p = subprocess.run(["perf", "report", "-i", str(out), "--stdio", "-g", "none", *args],
                               capture_output=True, text=True)
            rows = []
            for line in p.stdout.splitlines():
                m = re.match(r"\s*([\d.]+)%\s+(?:([\d.]+)%\s+)?(.*)$", line)
                if m and not line.startswith("#"):
                    rows.append((float(m.group(1)), float(m.group(2)) if m.group(2) else None,
                                 re.sub(r"\s+", " ", m.group(3)).strip()))
            return rows

        self_rows = perf_report("--no-children", "--sort", "dso,sym")
        threads: dict[str, float] = {}
        for pct, _, comm in perf_report("--no-children", "--sort", "comm"):
            name = re.sub(r"\d+$", "N", comm)
            threads[name] = threads.get(name, 0.0) + pct
        children = perf_report("--children", "--sort", "sym")
        spots = {}
        for label, rx in HOT_SPOTS:
            best = max((c for c, _, sym in children if re.search(rx, sym)), default=0.0)
            spots[label] = best
        self.results["profile"] = {
            "top": [(p, sym) for p, _, sym in self_rows[:25]],
            "threads": dict(sorted(threads.items(), key=lambda kv: -kv[1])),
            "inclusive": spots,
            "categories": categorize(self_rows),
        }
        log("  threads: " + ", ".join(f"{k} {v:.0f}%" for k, v in self.results["profile"]["threads"].items()))
        log("  inclusive: " + ", ".join(f"{k} {v:.0f}%" for k, v in spots.items()))

    def am_listing(self) -> None:
        a = self.a
        log("== Alertmanager listing: GET /api/v2/alerts at 1,000 and 10,000 alerts")
        aport = free_port()
        am = alertmanager_server(aport, self.work, self.logs, "alertmanager-listing")
        am.start()
        out = {}
        try:
            starts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            loaded = 0
            for size in (1_000, 10_000):
                while loaded < size:
                    batch = [am_alert(n, starts) for n in self.ids.take(min(500, size - loaded))]
                    status, _, body = call(aport, "POST", "/api/v2/alerts",
                                           body=json.dumps(batch).encode(),
                                           headers={"content-type": "application/json"})
                    if status != 200:
                        raise RuntimeError(f"alertmanager POST answered {status}: {body[:200]!r}")
                    loaded += len(batch)
                status, _, body = call(aport, "GET", "/api/v2/alerts")
                got = len(json.loads(body))
                if got != size:
                    log(f"  warning: Alertmanager lists {got} alerts, expected {size}")
                req = get_request(aport, "/api/v2/alerts", {"accept": "application/json"})
                write_pool(self.pools / "am-list", [req], 1)
                runs = [wrk(aport, self.pools / "am-list", "cycle", 1, 1, a.list_duration, am)
                        for _ in range(a.reps)]
                out[size] = [r.__dict__ for r in runs]
                log(f"  {size} alerts: p50 {med([r.p50_ms for r in runs]):.1f} ms, "
                    f"p99 {med([r.p99_ms for r in runs]):.1f} ms")
        finally:
            am.stop()
        self.results["am_listing"] = out

    def klaxon_at(self, n: int) -> None:
        """Restores n alerts, then: start-up, listing latency, 304 polls, RSS, disk."""
        a = self.a
        log(f"== klaxon with {n:,} stored alerts")
        res: dict = {"alerts": n}
        src = self.work / f"restore-{n}.jsonl"
        t0 = time.perf_counter()
        ids = write_restore_file(src, n)
        log(f"  wrote {src.name} ({src.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f}s")
        kdir = self.work / f"klaxon-{n}"
        t0 = time.perf_counter()
        p = subprocess.run([str(self.klaxon), "restore", "--from", str(src), "--data-dir", str(kdir)],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"klaxon restore failed ({p.returncode}): {p.stderr[-1500:]}")
        res["restore_s"] = time.perf_counter() - t0
        log(f"  klaxon restore: {res['restore_s']:.1f}s ({p.stderr.strip()[-200:] or p.stdout.strip()[-200:]})")
        src.unlink()
        port = free_port()
        k = klaxon_server(self.klaxon, port, kdir, self.logs, f"klaxon-{n}")
        # start-up to ready: spawn -> first 200 from /readyz, several times
        starts = []
        for _ in range(a.reps):
            starts.append(k.start(timeout=600))
            k.stop()
        res["startup_s"] = starts
        log(f"  start-up to ready: median {med(starts) * 1000:.0f} ms ({', '.join(f'{s * 1000:.0f}' for s in starts)})")
        k.start(timeout=600)
        try:
            if klaxon_total(port) != n:
                raise RuntimeError(f"klaxon reports {klaxon_total(port)} alerts after restoring {n}")
            res["rss_kib_idle"] = k.status_kib("VmRSS")
            # deep page: the page starting halfway down the newest-first list
            half = n // 2
            cursor = ids[n - half]
            status, _, body = call(port, "GET", f"/api/v1/alerts?limit=50&cursor={cursor}", headers=auth())
            page = json.loads(body)
            if status != 200 or not page["alerts"] or page["alerts"][0]["id"] != ids[n - half - 1]:
                raise RuntimeError(f"deep cursor page is not where expected: {status} {body[:300]!r}")
            status, _, body = call(port, "GET", "/api/v1/alerts?status=open&urgency=critical&limit=50",
                                   headers=auth())
            hot = json.loads(body)["alerts"]
            if len(hot) != min(50, HOT) or any(x["status"] != "open" or x["urgency"] != "critical" for x in hot):
                raise RuntimeError(f"open+critical listing returned {len(hot)} alerts")
            queries = {
                "newest_50": "/api/v1/alerts?limit=50",
                "open_critical_50": "/api/v1/alerts?status=open&urgency=critical&limit=50",
                "deep_cursor_50": f"/api/v1/alerts?limit=50&cursor={cursor}",
                "summary": "/api/v1/alerts/summary",
            }
            listing = {}
            for name, path in queries.items():
                write_pool(self.pools / "list", [get_request(port, path, auth())], 1)
                runs = [wrk(port, self.pools / "list", "cycle", 1, 1, a.list_duration, k) for _ in range(a.reps)]
                if any(r.errors for r in runs):
                    raise RuntimeError(f"{name}: errors {[r.raw for r in runs]}")
                listing[name] = [r.__dict__ for r in runs]
                log(f"  {name}: p50 {med([r.p50_ms for r in runs]):.3f} ms, p99 {med([r.p99_ms for r in runs]):.3f} ms, "
                    f"{med([r.rps for r in runs]):,.0f} req/s on 1 connection, cpu {med([r.cpu_us_per_req for r in runs]):.0f} us/req")
            res["listing"] = listing
            # 304 polls at 16 connections, against the ceiling answering the same GET
            status, headers, _ = call(port, "GET", "/api/v1/alerts?limit=50", headers=auth())
            etag = headers.get("etag")
            poll = get_request(port, "/api/v1/alerts?limit=50", auth({"if-none-match": etag}))
            status, _ = send_raw(port, poll)
            if status != 304:
                raise RuntimeError(f"If-None-Match poll answered {status}, not 304")
            cport = free_port()
            ceiling = Server("ceiling-get", [str(self.ceiling), f"127.0.0.1:{cport}"], cport, "/", self.logs)
            ceiling.start()
            polls, ceil = [], []
            try:
                for _ in range(a.reps):
                    write_pool(self.pools / "poll", [poll], a.threads)
                    polls.append(wrk(port, self.pools / "poll", "cycle", a.threads, a.connections,
                                     a.poll_duration, k))
                    cpoll = get_request(cport, "/api/v1/alerts?limit=50", auth({"if-none-match": etag}))
                    write_pool(self.pools / "cpoll", [cpoll], a.threads)
                    ceil.append(wrk(cport, self.pools / "cpoll", "cycle", a.threads, a.connections,
                                    a.poll_duration, ceiling))
            finally:
                ceiling.stop()
            if any(r.errors for r in polls):
                raise RuntimeError(f"304 polls had errors: {[r.raw for r in polls]}")
            res["poll_304"] = [r.__dict__ for r in polls]
            res["ceiling_get"] = [r.__dict__ for r in ceil]
            log(f"  304 polls: {med([r.rps for r in polls]):,.0f} req/s vs ceiling GET "
                f"{med([r.rps for r in ceil]):,.0f} req/s")
            res["rss_kib"] = k.status_kib("VmRSS")
            res["hwm_kib"] = k.status_kib("VmHWM")
            log(f"  RSS after the listing and polls: {res['rss_kib'] / 1024:.1f} MiB (peak {res['hwm_kib'] / 1024:.1f} MiB)")
        finally:
            k.stop()
        used, apparent = disk_usage(kdir)
        res["du_bytes"], res["apparent_bytes"] = used, apparent
        log(f"  on disk: {used / 2**20:.1f} MiB, {used / n:.0f} bytes/alert")
        if "ingest" not in self.skip:
            # Last, as it adds alerts: Events API ingest into a store that holds n, each
            # repetition into its own copy of it.
            res["ingest"] = []
            for rep in range(a.reps):
                name = f"klaxon-{n}-ingest-{rep + 1}"
                shutil.copytree(kdir, self.work / name)
                k = klaxon_server(self.klaxon, free_port(), self.work / name, self.logs, name)
                k.start(timeout=600)
                try:
                    run = self.klaxon_ingest(f"klaxon_events_at_{n}", k, gen_events)
                    run.raw["rss_kib"] = k.status_kib("VmRSS")
                    res["ingest"].append(run.__dict__)
                finally:
                    self.drop_store(k)
        if not a.keep:
            shutil.rmtree(kdir, ignore_errors=True)
        self.results.setdefault("klaxon_at", {})[n] = res


# Inclusive ("children") time of a few frames that say where klaxon's ingest time goes.
HOT_SPOTS = [
    ("klaxon writer thread, all of it", r"klaxon::store::writer::spawn::\{closure_env"),
    ("  writer: the changes (dedup lookup, record, index keys)", r"klaxon::store::writer::run$"),
    # Ledger::finish and Journal::append may be inlined into the writer loop; their callees are not.
    ("  writer: journal record and fdatasync (Journal::append)", r"klaxon::store::journal::Journal::(append|sync|write_record)"),
    ("  writer: the group into sled key by key, after answering (Group::finish)", r"klaxon::store::(ledger::Ledger::finish|group::Group::(finish|apply))"),
    ("  writer: checkpoints (sled flush and fdatasync)", r"klaxon::store::writer::Syncer::sync|sled::(db::Db|tree::Tree)::flush"),
    ("sled Tree::apply_batch", r"sled::tree::Tree::apply_batch"),
    ("sled IO threadpool (write_to_log, thread spawns)", r"sled::threadpool::perform_work"),
    ("sled IO threads: sync_file_range", r"^\[\.\] sync_file_range|__x64_sys_sync_file_range"),
    ("fdatasync", r"fdatasync|__x64_sys_fdatasync"),
    ("actix-web HTTP/1 dispatcher", r"actix_http::h1::dispatcher::Dispatcher<.*Future>::poll"),
    ("signature check (HMAC-SHA256)", r"klaxon::slack::signature::SignedBody as actix_web::extract::FromRequest"),
    ("Events API JSON parse", r"klaxon::slack::events::Envelope::parse"),
    ("JSON serialisation", r"serde_json::ser::"),
    ("malloc/free (mimalloc)", r"^\[\.\] (_?mi_\w+|_int_malloc|malloc|_int_free|cfree.*|free)$"),
    ("futex waits/wakes", r"__x64_sys_futex"),
]


def categorize(rows: list) -> dict:
    """Adds up self time by rough category from `perf report --sort dso,sym` rows."""
    rules = [
        ("kernel: block I/O, sync", r"fsync|sync_file|ext4|jbd2|blk_|bio_|writeback|submit_|iomap|filemap|iowrite|virtio"),
        ("kernel: scheduler, futex, irq", r"futex|schedule|finish_task_switch|_raw_spin|irq|softirq|wake_up|try_to_wake"),
        ("kernel: network, epoll, syscalls", r"tcp_|ip_|sock|skb|epoll|__sys_|syscall|entry_SYSCALL|loopback|net_|do_sys|__x64"),
        ("JSON (serde_json)", r"serde_json|serde::|serde_core"),
        ("HMAC/SHA-256", r"sha2|hmac|Sha256|compress256|sha256"),
        ("sled", r"sled::|crossbeam_epoch|crossbeam"),
        ("actix/http parsing", r"actix|httparse|h1::|http::"),
        ("tokio", r"tokio"),
        ("allocator, memcpy", r"malloc|free|realloc|_int_|\bmi_|_mi_|memcpy|memmove|memset|memcmp"),
        ("regex/urgency", r"regex|aho_corasick|urgency"),
        ("tracing/logging", r"tracing"),
    ]
    totals: dict[str, float] = {}
    for pct, _, sym in rows:
        name = "other"
        for cat, rx in rules:
            if re.search(rx, sym):
                name = cat
                break
        if name == "other" and "[k]" in sym:
            name = "kernel: other"
        totals[name] = totals.get(name, 0.0) + pct
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


# ---------------------------------------------------------------- report


def fmt(x, unit="", digits=0):
    if x is None:
        return "n/a"
    return f"{x:,.{digits}f}{unit}"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def am_version() -> str:
    if not shutil.which("prometheus-alertmanager"):
        return "alertmanager not installed"
    p = subprocess.run(["prometheus-alertmanager", "--version"], capture_output=True, text=True)
    return ((p.stdout + p.stderr).strip().splitlines() or ["alertmanager"])[0]


def report(b: Bench) -> str:
    a, R = b.a, b.results
    lines = [
        "# klaxon benchmark results",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')} on {os.uname().nodename} ({os.cpu_count()} cores), "
        f"{subprocess.run([str(b.klaxon), '--version'], capture_output=True, text=True).stdout.strip()}, "
        f"{am_version()}.",
        f"wrk -t{a.threads} -c{a.connections} -d{a.duration}s for ingest and polls ({a.poll_duration}s), "
        f"wrk -t1 -c1 -d{a.list_duration}s for listings; medians of {a.reps} repetitions; loopback. "
        "Latencies are wrk's, client-side (they include the HTTP round trip, so they bound server-side time from above). "
        "CPU is utime+stime of the server process per request.",
        "",
        "| metric | klaxon | Alertmanager | bare actix-web | ratio | target | result |",
        "|---|---|---|---|---|---|---|",
    ]
    ing = getattr(b, "runs", None)
    if ing:
        m = {k: {f: med([getattr(r, f) for r in v]) for f in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req")}
             for k, v in ing.items()}
        ev, og, am, ce = m["klaxon_events"], m["klaxon_outgoing"], m["alertmanager"], m["ceiling"]
        r_am, r_ce = ev["rps"] / am["rps"], ev["rps"] / ce["rps"]
        lines += [
            f"| Events API ingest, req/s | {fmt(ev['rps'])} | {fmt(am['rps'])} | {fmt(ce['rps'])} | "
            f"{r_am:.2f}× AM | ≥ 2× AM | {verdict(r_am >= 2)} |",
            f"| Events API ingest vs ceiling | | | | {r_ce:.0%} of ceiling | ≥ 40% | {verdict(r_ce >= 0.4)} |",
            f"| Events API ingest latency p50 / p99, ms | {fmt(ev['p50_ms'], '', 2)} / {fmt(ev['p99_ms'], '', 2)} | "
            f"{fmt(am['p50_ms'], '', 2)} / {fmt(am['p99_ms'], '', 2)} | {fmt(ce['p50_ms'], '', 2)} / {fmt(ce['p99_ms'], '', 2)} | | "
            f"p99 < 20 ms | {verdict(ev['p99_ms'] < 20)} |",
            f"| outgoing-webhook ingest, req/s | {fmt(og['rps'])} | | | {og['rps'] / am['rps']:.2f}× AM, "
            f"{og['rps'] / ce['rps']:.0%} of ceiling | | |",
            f"| outgoing-webhook latency p50 / p99, ms | {fmt(og['p50_ms'], '', 2)} / {fmt(og['p99_ms'], '', 2)} | | | | "
            f"p99 < 20 ms | {verdict(og['p99_ms'] < 20)} |",
            f"| server CPU per request, µs (Events / outgoing) | {fmt(ev['cpu_us_per_req'], '', 1)} / "
            f"{fmt(og['cpu_us_per_req'], '', 1)} | {fmt(am['cpu_us_per_req'], '', 1)} | {fmt(ce['cpu_us_per_req'], '', 1)} | "
            f"{ev['cpu_us_per_req'] / am['cpu_us_per_req']:.2f}× AM, {ev['cpu_us_per_req'] / ce['cpu_us_per_req']:.1f}× ceiling | | |",
        ]
        st = R.get("ingest_store", {})
        if st.get("alerts"):
            lines.append(f"| store after one Events ingest run: alerts, bytes on disk per alert, RSS | {st['alerts']:,} alerts, "
                         f"{st['du_bytes'] / st['alerts']:,.0f} B/alert, {st['rss_kib'] / 1024:.0f} MiB | | | | | |")
    aml = R.get("am_listing", {})
    am10 = med([r["p50_ms"] for r in aml.get(10_000, [])])
    am1 = med([r["p50_ms"] for r in aml.get(1_000, [])])
    if aml:
        lines.append(f"| Alertmanager GET /api/v2/alerts p50, ms (1k / 10k alerts) | | {fmt(am1, '', 1)} / "
                     f"{fmt(am10, '', 1)} | | | | |")
    sizes = sorted(R.get("klaxon_at", {}))
    largest = sizes[-1] if sizes else None
    for n in sizes:
        res = R["klaxon_at"][n]
        tag = f"@ {n:,}"
        is_target = n == largest
        note = "" if n >= 1_000_000 else " (1M: `--full`)"
        for name, label in (("newest_50", "newest 50"), ("open_critical_50", "open+critical newest 50"),
                            ("deep_cursor_50", "deep cursor page (halfway)"), ("summary", "summary")):
            runs = res["listing"][name]
            p50, p99 = med([r["p50_ms"] for r in runs]), med([r["p99_ms"] for r in runs])
            cpu = med([r["cpu_us_per_req"] for r in runs])
            ratio, target, result = "", "", ""
            if name == "newest_50" and am10:
                ratio = f"{am10 / p50:,.0f}× faster than AM @ 10k"
            if name == "newest_50" and is_target:
                target = f"p50 < 1 ms{note}; ≥ 100× AM @ 10k"
                result = f"{verdict(p50 < 1)} / {verdict(am10 / p50 >= 100 if am10 else None)}"
            lines.append(f"| listing {label} {tag}: p50 / p99 ms (server CPU µs) | {p50:.3f} / {p99:.3f} "
                         f"({cpu:.0f}) | | | {ratio} | {target} | {result} |")
        poll = med([r["rps"] for r in res["poll_304"]])
        cget = med([r["rps"] for r in res["ceiling_get"]])
        pr = poll / cget
        lines.append(f"| 304 polls {tag}, req/s (16 conns) | {fmt(poll)} | | {fmt(cget)} (GET) | {pr:.0%} of ceiling | "
                     f"{'≥ 70%' if is_target else ''} | {verdict(pr >= 0.7) if is_target else ''} |")
        rss = res["rss_kib"] / 1024
        lines.append(f"| resident memory {tag}, serving listings and polls after a start (VmRSS; peak VmHWM), MiB | "
                     f"{rss:.1f} ({res['hwm_kib'] / 1024:.1f}) | | | | "
                     f"{'≤ 64 MiB' + note if is_target else ''} | {verdict(rss <= 64) if is_target else ''} |")
        su = med(res["startup_s"])
        lines.append(f"| start-up to ready {tag}, ms | {su * 1000:.0f} | | | | {'< 1 s' + note if is_target else ''} | "
                     f"{verdict(su < 1) if is_target else ''} |")
        lines.append(f"| bytes on disk per alert {tag} (du; apparent) | {res['du_bytes'] / n:,.0f} "
                     f"({res['apparent_bytes'] / n:,.0f}) | | | | | |")
        lines.append(f"| `klaxon restore` of {n:,} alerts, s | {res['restore_s']:.1f} | | | | | |")
        if res.get("ingest"):
            runs = res["ingest"]
            rps, cpu = med([r["rps"] for r in runs]), med([r["cpu_us_per_req"] for r in runs])
            p50, p99 = med([r["p50_ms"] for r in runs]), med([r["p99_ms"] for r in runs])
            am_rps = med([r.rps for r in ing["alertmanager"]]) if ing else None
            ratio = f"{rps / am_rps:.2f}× AM (fresh)" if am_rps else ""
            rss = med([r["raw"]["rss_kib"] / 1024 for r in runs])
            # Memory while serving includes a server that has been ingesting.
            lines.append(f"| Events API ingest into a store holding {n:,}: req/s, p50 / p99 ms (server CPU µs); "
                         f"RSS after, MiB | {fmt(rps)}, {fmt(p50, '', 2)} / {fmt(p99, '', 2)} ({fmt(cpu, '', 1)}); "
                         f"{fmt(rss)} | | | {ratio} | {'RSS ≤ 64 MiB' + note if is_target else ''} | "
                         f"{verdict(rss <= 64) if is_target else ''} |")
    prof = R.get("profile")
    if prof and prof.get("top"):
        lines += ["", "## Profile: klaxon under Events API ingest (perf record -e cpu-clock, DWARF call graphs)", "",
                  "Share of klaxon's CPU samples. Threads: " +
                  ", ".join(f"{k} {v:.0f}%" for k, v in prof["threads"].items()) + ".", "",
                  "| inclusive % | where |", "|---|---|"]
        for k, v in prof["inclusive"].items():
            lines.append(f"| {v:.1f} | {k} |")
        lines += ["", "| self % | symbol |", "|---|---|"]
        for pct, sym in prof["top"][:15]:
            lines.append(f"| {pct:.2f} | `{sym[:120]}` |")
        lines += ["", "Self time by category (rough, by symbol name): " +
                  ", ".join(f"{k} {v:.1f}%" for k, v in prof["categories"].items())]
    elif prof:
        lines += ["", f"Profile: not recorded ({prof.get('error', '').strip()[-200:]})"]
    lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def perf_works() -> bool:
    if not shutil.which("perf"):
        return False
    p = subprocess.run(["perf", "record", "-e", "cpu-clock", "-o", "/dev/null", "true"],
                       capture_output=True, text=True)
    return p.returncode == 0


def main() -> None:
    ap = argparse.ArgumentParser(description="klaxon vs Alertmanager vs a bare actix-web ceiling")
    ap.add_argument("--full", action="store_true", help="also measure with 1,000,000 stored alerts")
    ap.add_argument("--sizes", default=None, help="comma list of stored-alert counts (default 10000, plus 1000000 with --full)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each measurement (default 3)")
    ap.add_argument("--duration", type=float, default=10, help="seconds per ingest run (default 10)")
    ap.add_argument("--poll-duration", type=float, default=5, help="seconds per 304-poll run (default 5)")
    ap.add_argument("--list-duration", type=float, default=3, help="seconds per listing run (default 3)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    ap.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    ap.add_argument("--skip", default="", help="comma list of phases to skip: ingest,profile,am-listing,stored")
    ap.add_argument("--no-profile", dest="profile", action="store_false", help="no perf profile")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already built")
    ap.add_argument("--no-install", action="store_true", help="do not apt-get install wrk, alertmanager, perf")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (data dirs, logs, perf.data)")
    ap.add_argument("--out", default=str(HERE / "results" / "latest.md"), help="where to write the table")
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    if "profile" in skip:
        a.profile = False
    sizes = [int(s) for s in a.sizes.split(",")] if a.sizes else ([10_000, 1_000_000] if a.full else [10_000])

    if not a.no_install:
        need_install(["wrk", "prometheus-alertmanager"] + (["linux-perf"] if a.profile else []))
    if a.profile and not perf_works():
        log("perf cannot record here: no profile")
        a.profile = False
    klaxon, ceiling = build(a.no_build)

    work = Path(tempfile.mkdtemp(prefix="klaxon-bench-"))
    shm = Path("/dev/shm")
    pools = Path(tempfile.mkdtemp(prefix="klaxon-bench-pools-", dir=shm if shm.is_dir() else None))
    log(f"work dir {work}, request pools in {pools}")
    b = Bench(a, klaxon, ceiling, work, pools)
    ok = False
    try:
        if "ingest" not in skip:
            b.ingest()
        if "am-listing" not in skip:
            b.am_listing()
        if "stored" not in skip:
            for n in sizes:
                b.klaxon_at(n)
        ok = True
    finally:
        shutil.rmtree(pools, ignore_errors=True)
        try:
            table = report(b)
        except Exception as e:  # a partial run: keep the original error visible
            table = f"(no table: {e!r})"
            ok = False
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if ok:
            out.write_text(table)
            out.with_suffix(".json").write_text(json.dumps(b.results, indent=1, default=str))
        print()
        print(table)
        if ok:
            log(f"written to {out} (raw numbers: {out.with_suffix('.json')})")
        if a.keep or not ok:
            log(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
