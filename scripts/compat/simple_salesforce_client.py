"""simple-salesforce against Mosaic over https://, logged in through the
SOAP login call with username, password and security token.

Run by scripts/compat-clients with MOSAIC_URL (https://...), MOSAIC_USERNAME,
MOSAIC_PASSWORD and REQUESTS_CA_BUNDLE (the development certificate). Mosaic
accounts have no security token: it is sent empty. Each check is one
function named check_*; add more for the compatibility suite. Prints
"N passed, M failed" and exits non-zero on a failure.
"""

import os
import sys
import traceback
from urllib.parse import urlparse

from simple_salesforce import Salesforce, SalesforceLogin

OBJECT = os.environ.get("MOSAIC_COMPAT_OBJECT", "Invoice__c")


def connect():
    url = os.environ["MOSAIC_URL"]
    # SOAP login; a server outside salesforce.com is named by scratch_url.
    session_id, instance = SalesforceLogin(
        username=os.environ["MOSAIC_USERNAME"],
        password=os.environ["MOSAIC_PASSWORD"],
        security_token="",
        sf_version="60.0",
        scratch_url=url,
    )
    assert instance == urlparse(url).netloc, instance
    # simple-salesforce builds every URL as https://<instance>.
    return Salesforce(instance=instance, session_id=session_id, version="60.0")


def check_bad_login_is_refused(sf):
    from simple_salesforce.exceptions import SalesforceAuthenticationFailed

    try:
        SalesforceLogin(
            username=os.environ["MOSAIC_USERNAME"],
            password="wrong password",
            security_token="",
            sf_version="60.0",
            scratch_url=os.environ["MOSAIC_URL"],
        )
    except SalesforceAuthenticationFailed as e:
        assert e.code == "INVALID_LOGIN", e.code
    else:
        raise AssertionError("a wrong password logged in")


def check_composite(sf):
    base = f"/services/data/v60.0/sobjects/{OBJECT}"
    out = sf.restful("composite", method="POST", json={
        "allOrNone": True,
        "compositeRequest": [
            {"method": "POST", "url": base, "referenceId": "inv", "body": {"Name": "Composite", "Amount__c": 7}},
            {"method": "GET", "url": base + "/@{inv.id}", "referenceId": "got"},
        ],
    })
    codes = [r["httpStatusCode"] for r in out["compositeResponse"]]
    assert codes == [201, 200], out
    assert out["compositeResponse"][1]["body"]["Name"] == "Composite", out


def check_query_all_with_paging(sf):
    name = "Paged simple-salesforce"
    for start in range(0, 250, 200):
        records = [{"attributes": {"type": OBJECT}, "Name": name, "Amount__c": i}
                   for i in range(start, min(start + 200, 250))]
        res = sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": records})
        assert all(r["success"] for r in res), res
    sf.headers["Sforce-Query-Options"] = "batchSize=200"
    try:
        first = sf.query(f"SELECT Id FROM {OBJECT} WHERE Name = '{name}'")
        assert first["done"] is False and len(first["records"]) == 200, first["done"]
        records = sf.query_all(f"SELECT Id FROM {OBJECT} WHERE Name = '{name}'")["records"]
    finally:
        del sf.headers["Sforce-Query-Options"]
    assert len(records) == 250 and len({r["Id"] for r in records}) == 250, len(records)


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


def check_upsert_by_external_id(sf):
    api = getattr(sf, OBJECT)
    # Salesforce answers 201 when the upsert created the record, 204 when
    # it updated one.
    status = api.upsert("Code__c/SS-UP-1", {"Name": "Upserted", "Amount__c": 10})
    assert status == 201, status
    status = api.upsert("Code__c/SS-UP-1", {"Amount__c": 11})
    assert status == 204, status
    records = sf.query(f"SELECT Id, Amount__c FROM {OBJECT} WHERE Code__c = 'SS-UP-1'")["records"]
    assert len(records) == 1 and records[0]["Amount__c"] == 11, records


def check_describe(sf):
    d = getattr(sf, OBJECT).describe()
    assert d["name"] == OBJECT, d["name"]
    names = {f["name"]: f for f in d["fields"]}
    assert {"Id", "Name", "Amount__c", "Code__c"} <= set(names), sorted(names)
    assert names["Amount__c"]["type"] == "currency", names["Amount__c"]
    assert names["Code__c"]["externalId"] is True, names["Code__c"]
    listed = {o["name"] for o in sf.describe()["sobjects"]}
    assert OBJECT in listed, sorted(listed)


def check_search(sf):
    api = getattr(sf, OBJECT)
    rid = api.create({"Name": "Zanzibar simple-salesforce", "Amount__c": 5})["id"]
    found = sf.search(f"FIND {{Zanzibar}} IN NAME FIELDS RETURNING {OBJECT}(Id, Name)")
    ids = [r["Id"] for r in found["searchRecords"]]
    assert rid in ids, found
    quick = sf.quick_search("Zanzibar")
    assert rid in [r["Id"] for r in quick["searchRecords"]], quick


def check_bulk2_insert_and_query(sf):
    name = "Bulk simple-salesforce"
    records = [{"Name": name, "Amount__c": str(i)} for i in range(300)]
    records.append({"Name": name, "Amount__c": "not a number"})
    results = getattr(sf.bulk2, OBJECT).insert(records=records, wait=1)
    processed = sum(int(r["numberRecordsProcessed"]) for r in results)
    failed = sum(int(r["numberRecordsFailed"]) for r in results)
    assert (processed, failed) == (301, 1), results
    rows = []
    for page in getattr(sf.bulk2, OBJECT).query(f"SELECT Id, Amount__c FROM {OBJECT} WHERE Name = '{name}'", max_records=200, wait=1):
        rows.extend(page.strip().splitlines()[1:])
    assert len(rows) == 300, len(rows)


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
