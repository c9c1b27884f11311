"""The haproxy drill's workload: threads sending the mixed workload through
the balancer until a stop file appears, then a check of the writes.

    python drill-load.py URL TOKEN WORKDIR THREADS

Reads the current phase's name from WORKDIR/phase after each answer (the
drill moves it along: steady, kill, rolling, ...) and stops when
WORKDIR/stop exists. Writes create Invoice__c records, each with a unique
Code__c and an Idempotency-Key; reads fetch acknowledged records and run a
query. No request is retried here: what fails is what the balancer let
fail. Prints a JSON summary; exit status 1 when an acknowledged write is
missing or a write landed twice.
"""

import collections
import json
import os
import random
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid

URL, TOKEN, WORK, THREADS = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
BASE = URL + "/services/data/v1"
HEADERS = {"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"}

lock = threading.Lock()
acked = {}  # Code__c -> record id (2xx answers)
unknown = set()  # writes whose outcome the client does not know
by_phase = collections.defaultdict(lambda: collections.Counter())
failures = collections.defaultdict(lambda: collections.Counter())
examples = {}  # first answer of each kind of failure


def phase():
    try:
        with open(os.path.join(WORK, "phase")) as f:
            return f.read().strip() or "steady"
    except OSError:
        return "steady"


def call(method, url, body=None, headers=None):
    h = dict(HEADERS)
    h.update(headers or {})
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except Exception as e:  # connection reset, refused, timeout
        return None, str(e).encode()


def worker(seed):
    rnd = random.Random(seed)
    while not os.path.exists(os.path.join(WORK, "stop")):
        kind = rnd.random()
        if kind < 0.3 or not acked:
            code = uuid.uuid4().hex
            status, body = call(
                "POST",
                BASE + "/sobjects/Invoice__c",
                {"Name": "drill " + code[:8], "Code__c": code, "Amount__c": "12.50"},
                {"Idempotency-Key": "drill-" + code},
            )
            op = "write"
            with lock:
                if status is not None and 200 <= status < 300:
                    acked[code] = json.loads(body)["id"]
                else:
                    unknown.add(code)
        elif kind < 0.85:
            with lock:
                code, rid = rnd.choice(list(acked.items()))
            status, body = call("GET", BASE + "/sobjects/Invoice__c/" + rid)
            op = "read"
        else:
            q = "SELECT Id, Code__c FROM Invoice__c ORDER BY Id DESC LIMIT 20"
            status, body = call("GET", BASE + "/query?q=" + urllib.parse.quote(q))
            op = "query"
        ok = status is not None and 200 <= status < 300
        ph = phase()  # when the answer came: a failure belongs to what caused it
        with lock:
            by_phase[ph][op] += 1
            if not ok:
                kind = f"{op} {status or 'no answer'}"
                failures[ph][kind] += 1
                examples.setdefault(kind, body[:300].decode(errors="replace"))


def all_codes():
    # Keyset pages on Id, each a query of its own: query locators
    # (nextRecordsUrl) belong to the instance that ran the query, and the
    # balancer may send the next page elsewhere.
    counts = collections.Counter()
    last = ""
    while True:
        q = "SELECT Id, Code__c FROM Invoice__c"
        if last:
            q += f" WHERE Id > '{last}'"
        q += " ORDER BY Id LIMIT 1000"
        status, body = call("GET", BASE + "/query?q=" + urllib.parse.quote(q))
        if status != 200:
            raise SystemExit(f"query of the written records failed: {status} {body[:300]!r}")
        records = json.loads(body)["records"]
        for r in records:
            counts[r["Code__c"]] += 1
        if len(records) < 1000:
            return counts
        last = records[-1]["Id"]


threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()

counts = all_codes()
lost = sorted(c for c in acked if counts[c] == 0)
duplicated = sorted(c for c, n in counts.items() if n > 1)
summary = {
    "requests": {p: dict(c) for p, c in by_phase.items()},
    "failed": {p: dict(c) for p, c in failures.items()},
    "failure_examples": examples,
    "writes_acknowledged": len(acked),
    "writes_unknown_outcome": len(unknown),
    "writes_unknown_that_landed": sum(1 for c in unknown if counts[c] > 0),
    "lost_writes": len(lost),
    "duplicated_writes": len(duplicated),
}
print(json.dumps(summary, indent=1))
sys.exit(1 if lost or duplicated else 0)
