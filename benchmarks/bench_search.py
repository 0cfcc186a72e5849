"""Search load benchmark: the real service on a loopback port, /search at concurrency 1 and 8.

    python benchmarks/bench_search.py --index /tmp/idx1 [--requests 200] [--levels 1,8] [--routes search,rerank,ask]
                                      [--configs service,no-middleware,no-arena]

Each route is measured in the same run, one after another: plain /search (the baseline), /search
with rerank=true (the trained judge over the top 20) and /ask. Each config is a service of its own,
measured one after another in the same run: `service` as shipped, `no-middleware` without the
request middleware (request id, body limit, metrics, access log), `no-arena` with the query
session's onnxruntime memory arena off, `bare` with both off: what each costs, apart.

Starts the service (uvicorn) in a child process of its own on a free 127.0.0.1 port, warms it up,
then sends POST /search requests (a fixed list of 40 questions from evals/questions.jsonl, cycled)
from a thread pool in this process. The load generator stays out of the service's process: in the
same interpreter its threads would take the service's interpreter lock, which no real client does.
Reports p50/p95/p99 latency and queries per second per level, and the CPU seconds the service's
process spent per request; writes benchmarks/results/search.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

for _n in ("DO_NOT_TRACK", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "UNSTRUCTURED_DISABLE_NOTICE"):
    os.environ.setdefault(_n, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    pos = (len(s) - 1) * p / 100
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def questions(n: int = 40) -> list[str]:
    rows = [json.loads(line) for line in (ROOT / "evals" / "questions.jsonl").read_text().splitlines() if line.strip()]
    return [r["question"] for r in rows[:n]]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--index", type=Path, required=True)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--levels", default="1,8")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--timeout", type=float, default=60.0, help="per request, seconds")
    p.add_argument("--routes", default="search", help="comma-separated: search, rerank, ask")
    p.add_argument("--configs", default="service", help="comma-separated: " + ", ".join(CONFIGS))
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "search.json")
    p.add_argument("--serve", choices=CONFIGS, help=argparse.SUPPRESS)  # the child process: serve, do not measure
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args.index, args.serve, args.port)
        return 0
    configs = [c for c in args.configs.split(",") if c]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        p.error(f"unknown configs {sorted(unknown)}: use any of {', '.join(CONFIGS)}")
    results = []
    for config in configs:
        rows = measure(args, config)
        if rows is None:
            return 1
        results += rows
    data = {"index": str(args.index), "cpu_count": os.cpu_count(), "k": args.k, "questions": len(questions()),
            "load_average_at_end": os.getloadavg(), "levels": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


CONFIGS = ("service", "no-middleware", "no-arena", "bare")


def serve(index: Path, config: str, port: int) -> None:
    """The child: one service as `config` says, on 127.0.0.1:port, until it is stopped."""
    import uvicorn

    from indexer import embed
    from service.app import create_app
    from service.config import ServiceSettings
    from service.middleware import RequestMiddleware

    embed.QUERY_ARENA = config not in ("no-arena", "bare")
    app = create_app(ServiceSettings(index_dir=index))
    if config in ("no-middleware", "bare"):
        # The middleware stack is built on the first request, from this list.
        app.user_middleware = [m for m in app.user_middleware if m.cls is not RequestMiddleware]
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(args, config: str) -> list[dict] | None:
    """The rows of one config: a fresh service in its own process and port, every route at every level."""
    import subprocess

    import httpx

    port = free_port()
    child = subprocess.Popen([sys.executable, __file__, "--serve", config, "--port", str(port), "--index", str(args.index)])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or child.poll() is not None:
                print("service did not start", file=sys.stderr)
                return None
            time.sleep(0.3)
        return _load(args, config, base, child.pid)
    finally:
        child.terminate()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _load(args, config: str, base: str, pid: int) -> list[dict]:
    import httpx

    qs = questions()
    levels = [int(x) for x in args.levels.split(",")]
    results = []
    with httpx.Client(base_url=base, timeout=args.timeout,
                      limits=httpx.Limits(max_connections=max(levels), max_keepalive_connections=max(levels))) as client:
        for q in qs[:5]:  # warm-up: model, caches
            client.post("/search", json={"query": q, "k": args.k}).raise_for_status()

        routes = {"search": ("/search", lambda q: {"query": q, "k": args.k}),
                  "rerank": ("/search", lambda q: {"query": q, "k": args.k, "rerank": True}),
                  "ask": ("/ask", lambda q: {"question": q})}

        def one(i: int, path: str, body) -> tuple[float, int]:
            t0 = time.perf_counter()
            try:
                r = client.post(path, json=body(qs[i % len(qs)]))
                code = r.status_code
            except httpx.HTTPError:
                code = -1
            return (time.perf_counter() - t0) * 1000, code

        for route, level in [(r, lv) for r in args.routes.split(",") for lv in levels]:
            path, body = routes[route]
            client.post(path, json=body(qs[0])).raise_for_status()
            cpu0, t0 = cpu_seconds(pid), time.perf_counter()
            with ThreadPoolExecutor(max_workers=level) as pool:
                out = list(pool.map(lambda i: one(i, path, body), range(args.requests)))
            wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
            lat = [ms for ms, code in out if code == 200]
            errors = sum(1 for _, code in out if code != 200)
            row = {"config": config, "route": route, "concurrency": level, "requests": args.requests, "errors": errors,
                   "p50_ms": round(pct(lat, 50), 1) if lat else None, "p95_ms": round(pct(lat, 95), 1) if lat else None,
                   "p99_ms": round(pct(lat, 99), 1) if lat else None,
                   "mean_ms": round(statistics.fmean(lat), 1) if lat else None,
                   "qps": round(len(lat) / wall, 2), "wall_seconds": round(wall, 2),
                   "service_cpu_ms_per_request": round(cpu * 1000 / args.requests, 2)}
            results.append(row)
            print(f"{config} {route} concurrency {level}: p50 {row['p50_ms']} ms  p95 {row['p95_ms']} ms  p99 {row['p99_ms']} ms  "
                  f"{row['qps']} q/s  service CPU {row['service_cpu_ms_per_request']} ms/request  errors {errors}", flush=True)
    return results


if __name__ == "__main__":
    raise SystemExit(main())
