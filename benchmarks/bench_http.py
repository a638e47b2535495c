"""HTTP figures: what publishing a large bundle every second costs a loaded service's requests.

    .venv/bin/python -m benchmarks.bench_http [--quick] [--json out.json]

The reference service (``examples/service.py``, one process, HTTP/1.1
keep-alive) serves a folder of ``patterns``-pattern bundles on 127.0.0.1 and
polls ``CURRENT`` every ``poll_s`` seconds. Client processes hold
``connections`` keep-alive connections (``http.client``, one thread each) and
send ``POST /classify`` back to back, each request timed on its own; they run
through the whole benchmark, and every request is filed under the window its
answer arrived in.

Windows of ``window_s`` seconds follow each other in repetitions; in each
repetition, in rotating order (so both sides see the same machine load):

- ``quiet``: nothing is published;
- ``publish``: every ``publish_every_s`` seconds ``CURRENT`` is pointed at the
  other of two bundles of different content (built and verified before the
  run, so a publish costs the service its reload and nothing else);
- ``equal``: the same, between two bundles of equal content (a nightly
  republish that changed nothing but the number).

Per window: requests a second and the p50/p99 latency, over the window less
its first ``settle_s`` seconds; per repetition, each publishing window's
ratios to the quiet window of the same repetition (p99 and throughput), and
their medians; and pooled, every request of a way in all repetitions against
every quiet request (the steadier figure when the machine is noisy). Between
windows, outside any, the benchmark waits until the service serves bundle 1
again, so a reload never spills into the next window.
``bundles`` counts the bundles the answers name (each answer names the
bundle that decided): 1 in a quiet window, 2 in a publishing one. The load
average is reported: on a shared machine it is the context of every figure.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from dataclasses import dataclass
from pathlib import Path

from benchmarks._synth import synth_queries, synth_rules
from benchmarks._timing import bench_main, finish_meta, median, percentile, run_meta
from rulelife._files import atomic_write
from rulelife.serving.bundle import BundleStore, encode_bundle
from rulelife.serving.publish import publish_rules

__all__ = ["FULL", "QUICK", "Config", "format_table", "main", "run"]

SERVICE = Path(__file__).resolve().parents[1] / "examples" / "service.py"
WAYS = ("quiet", "publish", "equal")


@dataclass(frozen=True)
class Config:
    patterns: int = 100_000
    connections: int = 8
    client_processes: int = 2
    window_s: float = 4.0
    settle_s: float = 0.5
    reps: int = 12
    publish_every_s: float = 1.0
    poll_s: float = 0.1


FULL = Config()
QUICK = Config(patterns=10_000, window_s=3.0, reps=2)


def _bundles(root: Path, patterns: int) -> dict[str, list[bytes]]:
    """Bundles 1 and 3 of equal content, 2 of other content (one rule fewer); the CURRENT pointers
    each way alternates between."""
    store = BundleStore(root)
    rules, _ = synth_rules(patterns)
    first = publish_rules(store, rules).bundle
    second, _ = store.build(rules[:-1])
    data, _ = encode_bundle(rules, 3)  # equal content to bundle 1, another number: build() would not write it
    atomic_write(store.path_of(3), data)
    third = store.load(3)
    assert third.content_hash == first.content_hash != second.content_hash

    def pointer(bundle) -> bytes:
        return json.dumps({"number": bundle.number, "file": bundle.path.name, "checksum": bundle.checksum}).encode()

    return {"publish": [pointer(second), pointer(first)], "equal": [pointer(third), pointer(first)]}


def _client(url: str, threads: int, bodies: list[bytes], stop, out: str) -> None:
    """Send requests on ``threads`` keep-alive connections until the event ``stop`` is set; write
    (arrival, latency, bundle) triples to ``out`` (arrival on the system-wide monotonic clock)."""
    host, port = url.split("//")[1].split(":")
    records = []

    def run(offset: int) -> None:
        done, seconds, bundles = array("d"), array("d"), array("q")
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        clock = time.monotonic
        i = offset
        headers = {"Content-Type": "application/json"}
        while True:
            body = bodies[i % len(bodies)]
            i += threads
            start = clock()
            connection.request("POST", "/classify", body, headers)
            answer = connection.getresponse().read()
            end = clock()
            at = answer.find(b'"bundle_version": ')
            done.append(end)
            seconds.append(end - start)
            bundles.append(int(answer[at + 18: answer.find(b",", at)]))
            if stop.is_set():
                break
        connection.close()
        records.append((done, seconds, bundles))

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    with open(out, "wb") as handle:
        for done, seconds, bundles in records:
            handle.write(len(done).to_bytes(8, "little"))
            done.tofile(handle)
            seconds.tofile(handle)
            bundles.tofile(handle)


def _read_records(path: str) -> list[tuple[float, float, int]]:
    rows = []
    with open(path, "rb") as handle:
        while head := handle.read(8):
            n = int.from_bytes(head, "little")
            done, seconds, bundles = array("d"), array("d"), array("q")
            done.fromfile(handle, n)
            seconds.fromfile(handle, n)
            bundles.fromfile(handle, n)
            rows.extend(zip(done, seconds, bundles))
    return rows


def _window_stats(rows: list[tuple[float, float, int]], start: float, end: float) -> dict:
    inside = [r for r in rows if start <= r[0] < end]
    latencies = sorted(r[1] for r in inside)
    changes = len({r[2] for r in inside})
    return {"requests": len(latencies), "rps": len(latencies) / (end - start),
            "p50_ms": percentile(latencies, 0.50) * 1e3, "p99_ms": percentile(latencies, 0.99) * 1e3,
            "max_ms": latencies[-1] * 1e3, "bundles_seen": changes}


def _wait_for_bundle(url: str, number: int, timeout: float = 60.0) -> None:
    """Return once the service at ``url`` serves bundle ``number`` and has nothing left to load."""
    host, port = url.split("//")[1].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            connection.request("GET", "/health")
            health = json.loads(connection.getresponse().read())
            if health["bundle_version"] == number and health["serving_current"]:
                time.sleep(0.3)  # the bundle it replaced is freed after the swap
                return
            time.sleep(0.05)
    finally:
        connection.close()
    raise RuntimeError(f"the service did not come back to bundle {number} within {timeout} s")


def _start_service(bundles: Path, logs: Path, poll_s: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(SERVICE), "--bundles", str(bundles), "--logs", str(logs),
                             "--port", "0", "--poll", str(poll_s)], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"the service did not start: {line!r}")
    return proc, line.split()[2]


def run(config: Config, progress=lambda msg: None) -> dict:
    meta = run_meta(config)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bundles"
        progress(f"building bundles of {config.patterns:,} patterns")
        pointers = _bundles(root, config.patterns)
        rules, vocab = synth_rules(config.patterns)
        phrases = [p for rule in rules[:: max(1, len(rules) // 2000)] for p in rule.patterns]
        texts = synth_queries(4000, vocab, phrases, seed=2)
        bodies = [json.dumps({"text": t, "locale": "en-US", "query_id": f"q-{i}"}).encode()
                  for i, t in enumerate(texts)]
        proc, url = _start_service(root, Path(tmp) / "logs", config.poll_s)
        try:
            start_at = time.monotonic() + 2.0  # the clients connect and warm up first
            per_process = [config.connections // config.client_processes + (n < config.connections %
                           config.client_processes) for n in range(config.client_processes)]
            outs = [str(Path(tmp) / f"client-{n}.bin") for n in range(config.client_processes)]
            context = multiprocessing.get_context("spawn")
            stop = context.Event()
            clients = [context.Process(target=_client, args=(url, n, bodies[k::config.client_processes], stop, out))
                       for k, (n, out) in enumerate(zip(per_process, outs))]
            for client in clients:
                client.start()
            time.sleep(max(0.0, start_at - time.monotonic()))
            schedule = []
            for rep in range(config.reps):
                shift = rep % len(WAYS)
                for way in WAYS[shift:] + WAYS[:shift]:
                    progress(f"repetition {rep + 1}/{config.reps}: {way}")
                    begin = time.monotonic()
                    schedule.append((rep, way, begin, begin + config.window_s))
                    if way != "quiet":  # an even count: every window ends on bundle 1, as it began
                        count = 2 * max(1, int(config.window_s / config.publish_every_s) // 2)
                        for k in range(count):
                            time.sleep(max(0.0, begin + k * config.publish_every_s - time.monotonic()))
                            atomic_write(root / "CURRENT", pointers[way][k % 2])
                    time.sleep(max(0.0, begin + config.window_s - time.monotonic()))
                    _wait_for_bundle(url, 1)  # a reload still under way lands here, in no window
            stop.set()
            for client in clients:
                client.join()
            if any(client.exitcode for client in clients):
                raise RuntimeError("a client process failed (its traceback is above)")
            rows = [row for out in outs for row in _read_records(out)]
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    results = []
    pooled: dict[str, list[float]] = {way: [] for way in WAYS}  # every latency of a way, all repetitions
    seconds = dict.fromkeys(WAYS, 0.0)
    for rep, way, begin, end in schedule:
        results.append({"rep": rep, "way": way, **_window_stats(rows, begin + config.settle_s, end)})
        pooled[way] += [r[1] for r in rows if begin + config.settle_s <= r[0] < end]
        seconds[way] += end - begin - config.settle_s
    report = {"windows": results, "patterns": config.patterns, "connections": config.connections}
    quiet_p99 = percentile(sorted(pooled["quiet"]), 0.99)
    for way in ("publish", "equal"):
        # Pooled over the repetitions: every request of the way against every quiet one, a
        # steadier estimate than the median of per-repetition ratios on a noisy machine.
        report[f"{way}_pooled"] = {
            "p99_ratio": percentile(sorted(pooled[way]), 0.99) / quiet_p99,
            "rps_ratio": (len(pooled[way]) / seconds[way]) / (len(pooled["quiet"]) / seconds["quiet"]),
            "max_ms": max(pooled[way]) * 1e3,
        }
    report["quiet_pooled"] = {"p99_ms": quiet_p99 * 1e3, "max_ms": max(pooled["quiet"]) * 1e3}
    for way in ("publish", "equal"):
        p99, rps = [], []
        for rep in range(config.reps):
            quiet = next(r for r in results if r["rep"] == rep and r["way"] == "quiet")
            this = next(r for r in results if r["rep"] == rep and r["way"] == way)
            p99.append(this["p99_ms"] / quiet["p99_ms"])
            rps.append(this["rps"] / quiet["rps"])
        report[way] = {"p99_ratios": p99, "rps_ratios": rps, "p99_ratio": median(p99), "rps_ratio": median(rps)}
    report["meta"] = finish_meta(meta)
    report["meta"]["cpu_count"] = os.cpu_count()
    return report


def format_table(report: dict) -> str:
    lines = [f"HTTP service at {report['patterns']:,} patterns, {report['connections']} keep-alive connections",
             f"    {'rep':>3} {'window':8} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'bundles':>8}"]
    for w in report["windows"]:
        lines.append(f"    {w['rep'] + 1:>3} {w['way']:8} {w['rps']:>8.0f} {w['p50_ms']:>7.2f} {w['p99_ms']:>7.2f} "
                     f"{w['max_ms']:>7.1f} {w['bundles_seen']:>8}")
    for way, label in (("publish", "new content"), ("equal", "equal content")):
        r = report[way]
        p99 = ", ".join(f"{x:.2f}" for x in r["p99_ratios"])
        rps = ", ".join(f"{x:.2f}" for x in r["rps_ratios"])
        pooled = report[f"{way}_pooled"]
        lines.append(f"    {way} / quiet ({label}): p99 {r['p99_ratio']:.2f} [{p99}], "
                     f"throughput {r['rps_ratio']:.2f} [{rps}]; pooled p99 {pooled['p99_ratio']:.2f}, "
                     f"throughput {pooled['rps_ratio']:.2f}, slowest {pooled['max_ms']:.0f} ms")
    lines.append(f"    quiet: pooled p99 {report['quiet_pooled']['p99_ms']:.2f} ms, "
                 f"slowest {report['quiet_pooled']['max_ms']:.0f} ms")
    m = report["meta"]
    lines.append(f"load average {m['load_average']} -> {m['load_average_end']} on {m['cpu_count']} CPUs, "
                 f"{m['elapsed_s']:.0f} s")
    return "\n".join(lines)


def main(argv=None) -> int:
    return bench_main(argv, prog="python -m benchmarks.bench_http", doc=__doc__, run=run,
                      format_table=format_table, quick=QUICK, full=FULL,
                      quick_help="10K patterns, shorter windows, about a minute")


if __name__ == "__main__":
    sys.exit(main())
