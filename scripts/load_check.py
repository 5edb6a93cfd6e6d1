#!/usr/bin/env python
"""Does the server stay responsive while busy? N clients call bstbi while /info and /datastore are timed.

    python scripts/load_check.py --url http://127.0.0.1:8000 [--clients 8] [--seconds 60] [--token T]

Each client is a real ``monailabel.client.MONAILabelClient`` calling ``bstbi`` on the datastore's
studies in turn; one more thread asks /info/ and /datastore/?output=all every 0.5 s and records
how long each answer took. Prints the p50 / p95 / max of those light requests (issue 11's bar:
p95 <= 0.3 s with 8 clients) and the bstbi calls per second.
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--token", default=None, help="API token, when the server asks for one")
    args = parser.parse_args(argv)

    import httpx
    from monailabel.client import MONAILabelClient

    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    studies = sorted(httpx.get(f"{args.url}/datastore/", params={"output": "all"}, headers=headers, timeout=30)
                     .json()["objects"])
    stop = time.time() + args.seconds
    calls, failures, light = [], [], {"info": [], "datastore": []}

    def client_loop(index: int) -> None:
        client = MONAILabelClient(args.url)
        if args.token:
            client.update_auth(client.auth_token("load-check", args.token))
        i = index
        while time.time() < stop:
            start = time.perf_counter()
            try:
                client.infer("bstbi", studies[i % len(studies)], {})
                calls.append(time.perf_counter() - start)
            except Exception as error:  # noqa: BLE001 - counted and shown, the check goes on
                failures.append(str(error)[:200])
            i += args.clients

    def light_loop() -> None:
        with httpx.Client(headers=headers, timeout=30) as http:
            while time.time() < stop:
                for name, path, params in (("info", "/info/", None), ("datastore", "/datastore/", {"output": "all"})):
                    start = time.perf_counter()
                    http.get(f"{args.url}{path}", params=params).raise_for_status()
                    light[name].append(time.perf_counter() - start)
                time.sleep(0.5)

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(args.clients)]
    threads.append(threading.Thread(target=light_loop))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, seconds in light.items():
        s = np.array(seconds)
        print(f"{name}: {s.size} requests, p50 {np.percentile(s, 50):.3f} s, p95 {np.percentile(s, 95):.3f} s, "
              f"max {s.max():.3f} s")
    print(f"bstbi: {len(calls)} calls by {args.clients} clients in {args.seconds:.0f} s "
          f"({len(calls) / args.seconds:.2f}/s, median {np.median(calls) if calls else float('nan'):.2f} s each), "
          f"{len(failures)} failed" + (f"; first failure: {failures[0]}" if failures else ""))
    p95 = max(np.percentile(np.array(v), 95) for v in light.values())
    return 0 if p95 <= 0.3 and not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
