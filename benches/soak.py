#!/usr/bin/env python3
"""Soak run: Events API ingest plus dashboard polling against a release
klaxon on loopback, sampling the server's resident memory and open file
descriptors. Memory and descriptors must stay flat.

    python3 benches/soak.py --minutes 10

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
    workers = [threading.Thread(target=ingest, args=(port, stop, counter, a.ingest_rate / 4, w)) for w in range(4)]
    workers += [threading.Thread(target=poll, args=(port, stop, counter, a.poll_rate / 2)) for _ in range(2)]
    for w in workers: w.start()
    samples, end = [], time.time() + a.minutes * 60
    print(f"{'t (s)':>7} {'RSS MiB':>8} {'fds':>5} {'alerts':>8} {'polls':>8} {'errors':>6}", flush=True)
    start = time.time()
    try:
        while time.time() < end:
            time.sleep(a.sample_secs)
            s = (time.time() - start, rss_kib(server.pid) / 1024, open_fds(server.pid), counter["ingest"],
                 counter["poll_200"] + counter["poll_304"], counter["ingest_errors"] + counter["poll_errors"])
            samples.append(s)
            print(f"{s[0]:7.0f} {s[1]:8.1f} {s[2]:5d} {s[3]:8d} {s[4]:8d} {s[5]:6d}", flush=True)
    finally:
        stop.set()
        for w in workers: w.join()
        server.terminate(); server.wait(timeout=30)
    du = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(data) for f in fs)
    warm = samples[len(samples) // 4:] or samples
    rss = [s[1] for s in warm]; fds = [s[2] for s in warm]
    print(f"\nafter warm-up: RSS {min(rss):.1f}-{max(rss):.1f} MiB, fds {min(fds)}-{max(fds)}; "
          f"{counter['ingest']} alerts, {counter['poll_200']} polls 200, {counter['poll_304']} polls 304, "
          f"{counter['ingest_errors'] + counter['poll_errors']} errors; {du / 1e6:.1f} MB on disk; exit {server.returncode}")
    flat = max(fds) - min(fds) <= 4 and max(rss) - min(rss) <= 16
    print("FLAT" if flat else "NOT FLAT")
    sys.exit(0 if flat and server.returncode == 0 else 1)


if __name__ == "__main__":
    main()
