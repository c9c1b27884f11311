"""simple-salesforce against Mosaic over https:// with an access token.

Run by scripts/compat-clients with MOSAIC_URL (https://...), MOSAIC_TOKEN
and REQUESTS_CA_BUNDLE (the development certificate). Each check is one
function named check_*; add more for the compatibility suite. Prints
"N passed, M failed" and exits non-zero on a failure.
"""

import os
import sys
import traceback
from urllib.parse import urlparse

from simple_salesforce import Salesforce

OBJECT = os.environ.get("MOSAIC_COMPAT_OBJECT", "Invoice__c")


def connect():
    url = os.environ["MOSAIC_URL"]
    # simple-salesforce builds every URL as https://<instance>.
    instance = urlparse(url).netloc
    return Salesforce(instance=instance, session_id=os.environ["MOSAIC_TOKEN"], version="60.0")


def check_create_get_query(sf):
    api = getattr(sf, OBJECT)
    created = api.create({"Name": "From simple-salesforce", "Amount__c": 1250.5})
    assert created["success"] is True, created
    rid = created["id"]
    got = api.get(rid)
    assert got["Id"] == rid, got
    assert got["Name"] == "From simple-salesforce", got
    assert got["attributes"]["type"] == OBJECT, got
    result = sf.query(f"SELECT Id, Name, Amount__c FROM {OBJECT} WHERE Id = '{rid}'")
    assert result["totalSize"] == 1, result
    assert result["records"][0]["Id"] == rid, result


def check_update_and_query_all(sf):
    api = getattr(sf, OBJECT)
    rid = api.create({"Name": "To update", "Amount__c": 1})["id"]
    status = api.update(rid, {"Amount__c": 2})
    assert status == 204, status
    records = sf.query_all(f"SELECT Id, Amount__c FROM {OBJECT} WHERE Name = 'To update'")["records"]
    assert [r["Id"] for r in records] == [rid], records


def main():
    sf = connect()
    checks = [(name, fn) for name, fn in sorted(globals().items()) if name.startswith("check_")]
    failed = 0
    for name, fn in checks:
        try:
            fn(sf)
            print(f"ok   simple-salesforce {name}")
        except Exception:  # report every check, then fail
            failed += 1
            print(f"FAIL simple-salesforce {name}")
            traceback.print_exc()
    print(f"{len(checks) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
