#!/usr/bin/env python3
"""Soak run: Events API ingest plus dashboard polling against a release
klaxon on loopback, sampling the server's resident memory and open file
descriptors; then a polling-only phase on the same store.

Open files must stay flat throughout. During ingest the store grows, and so
does sled's memory with it (reported per 1,000 alerts). With the store's size
fixed (the polling-only phase), memory must stay flat: growth there would be a leak.

    python3 benches/soak.py --minutes 10 --poll-only-minutes 3

Standard library only. Builds klaxon in release mode first.
"""
import argparse, hashlib, hmac, http.client, json, os, subprocess, sys, tempfile, threading, time

SECRET = "soak-signing-secret"
READ = "soak-read-token"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def ingest(port, stop, counter, rate, worker):
    template = json.load(open(os.path.join(ROOT, "fixtures/slack/events/message.json")))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    n = 0
    while not stop.is_set():
        started = time.time()
        n += 1
        template["event_id"] = f"EvSOAK{worker}x{n}"
        template["event"]["ts"] = f"{int(started)}.{worker:02d}{n % 10000:04d}"
        body = json.dumps(template).encode()
        ts = str(int(time.time()))
        sig = "v0=" + hmac.new(SECRET.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
        conn.request("POST", "/slack/events", body, {"content-type": "application/json",
                     "x-slack-request-timestamp": ts, "x-slack-signature": sig})
        res = conn.getresponse(); res.read()
        counter["ingest" if res.status == 200 else "ingest_errors"] += 1
        time.sleep(max(0.0, 1.0 / rate - (time.time() - started)))


def poll(port, stop, counter, rate):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    tags = {}
    paths = ["/api/v1/alerts?status=open&urgency=high,critical", "/api/v1/alerts?limit=50", "/api/v1/alerts/summary"]
    i = 0
    while not stop.is_set():
        started = time.time()
        path = paths[i % len(paths)]; i += 1
        headers = {"authorization": f"Bearer {READ}"}
        if path in tags:
            headers["if-none-match"] = tags[path]
        conn.request("GET", path, headers=headers)
        res = conn.getresponse(); res.read()
        tags[path] = res.getheader("etag")
        counter["poll_304" if res.status == 304 else ("poll_200" if res.status == 200 else "poll_errors")] += 1
        time.sleep(max(0.0, 1.0 / rate - (time.time() - started)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--ingest-rate", type=float, default=100, help="events/s in total")
    p.add_argument("--poll-rate", type=float, default=50, help="polls/s in total")
    p.add_argument("--sample-secs", type=float, default=30)
    p.add_argument("--poll-only-minutes", type=float, default=3)
    a = p.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    data = tempfile.mkdtemp(prefix="klaxon-soak-")
    env = dict(os.environ, KLAXON_LISTEN="127.0.0.1:0", KLAXON_DATA_DIR=data, SLACK_SIGNING_SECRET=SECRET,
               KLAXON_READ_TOKENS=READ, KLAXON_LOG_FORMAT="json", RUST_LOG="warn,klaxon::startup=info",
               KLAXON_SLACK_RATE_PER_SEC="0", KLAXON_API_RATE_PER_SEC="0")
    server = subprocess.Popen([os.path.join(target, "release/klaxon"), "serve"], env=env, stderr=subprocess.PIPE, text=True)
    port = None
    for line in server.stderr:
        if "klaxon listening" in line:
            port = int(json.loads(line)["addr"].rsplit(":", 1)[1]); break
    threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()
    stop, counter = threading.Event(), {k: 0 for k in ["ingest", "ingest_errors", "poll_200", "poll_304", "poll_errors"]}
    stop_ingest = threading.Event()
    workers = [threading.Thread(target=ingest, args=(port, stop_ingest, counter, a.ingest_rate / 4, w)) for w in range(4)]
    pollers = [threading.Thread(target=poll, args=(port, stop, counter, a.poll_rate / 2)) for _ in range(2)]
    for w in workers + pollers: w.start()
    samples, polled = [], []
    print(f"{'t (s)':>7} {'RSS MiB':>8} {'fds':>5} {'alerts':>8} {'polls':>8} {'errors':>6}", flush=True)
    start = time.time()

    def sample_until(end, into):
        while time.time() < end:
            time.sleep(a.sample_secs)
            s = (time.time() - start, rss_kib(server.pid) / 1024, open_fds(server.pid), counter["ingest"],
                 counter["poll_200"] + counter["poll_304"], counter["ingest_errors"] + counter["poll_errors"])
            into.append(s)
            print(f"{s[0]:7.0f} {s[1]:8.1f} {s[2]:5d} {s[3]:8d} {s[4]:8d} {s[5]:6d}", flush=True)
    try:
        sample_until(time.time() + a.minutes * 60, samples)
        stop_ingest.set()
        for w in workers: w.join()
        print("-- polling only --", flush=True)
        sample_until(time.time() + a.poll_only_minutes * 60, polled)
    finally:
        stop_ingest.set(); stop.set()
        for w in workers + pollers: w.join()
        server.terminate(); server.wait(timeout=30)
    du = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(data) for f in fs)
    fds = [s[2] for s in samples + polled]
    growth = (samples[-1][1] - samples[0][1]) / max(1, (samples[-1][3] - samples[0][3]) / 1000)
    idle_rss = [s[1] for s in polled] or [0.0]
    errors = counter["ingest_errors"] + counter["poll_errors"]
    print(f"\ningest: {counter['ingest']} alerts, RSS {samples[0][1]:.1f} -> {samples[-1][1]:.1f} MiB "
          f"({growth:.2f} MiB per 1,000 alerts stored); {du / 1e6:.1f} MB on disk")
    print(f"polling only: RSS {min(idle_rss):.1f}-{max(idle_rss):.1f} MiB; fds {min(fds)}-{max(fds)} throughout; "
          f"{counter['poll_200']} polls 200, {counter['poll_304']} polls 304, {errors} errors; exit {server.returncode}")
    flat = max(fds) - min(fds) <= 4 and max(idle_rss) - min(idle_rss) <= 4 and errors == 0
    print("FLAT" if flat else "NOT FLAT")
    sys.exit(0 if flat and server.returncode == 0 else 1)


if __name__ == "__main__":
    main()
