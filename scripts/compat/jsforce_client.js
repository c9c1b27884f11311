// jsforce against Mosaic over https://, logged in with username and
// password (jsforce's SOAP login call).
//
// Run by scripts/compat-clients with MOSAIC_URL (https://...),
// MOSAIC_USERNAME, MOSAIC_PASSWORD and NODE_EXTRA_CA_CERTS (the development certificate); NODE_PATH points
// at the installed jsforce. Each check is one entry of CHECKS; add more for
// the compatibility suite. Prints "N passed, M failed" and exits non-zero on
// a failure.
'use strict';

const assert = require('node:assert/strict');
const jsforce = require('jsforce');

const OBJECT = process.env.MOSAIC_COMPAT_OBJECT || 'Invoice__c';

async function connect() {
  const conn = new jsforce.Connection({ loginUrl: process.env.MOSAIC_URL, version: '60.0' });
  const info = await conn.login(process.env.MOSAIC_USERNAME, process.env.MOSAIC_PASSWORD);
  assert.ok(info.id && info.organizationId, JSON.stringify(info));
  assert.equal(conn.instanceUrl, process.env.MOSAIC_URL);
  return conn;
}

const CHECKS = {
  async badLoginIsRefused() {
    const conn = new jsforce.Connection({ loginUrl: process.env.MOSAIC_URL, version: '60.0' });
    await assert.rejects(conn.login(process.env.MOSAIC_USERNAME, 'wrong password'), /INVALID_LOGIN/);
  },

  async composite(conn) {
    const base = `/services/data/v60.0/sobjects/${OBJECT}`;
    const out = await conn.requestPost('/services/data/v60.0/composite', {
      allOrNone: true,
      compositeRequest: [
        { method: 'POST', url: base, referenceId: 'inv', body: { Name: 'Composite jsforce', Amount__c: 3 } },
        { method: 'PATCH', url: `${base}/@{inv.id}`, referenceId: 'upd', body: { Amount__c: 4 } },
        { method: 'GET', url: `${base}/@{inv.id}`, referenceId: 'got' },
      ],
    });
    const codes = out.compositeResponse.map((r) => r.httpStatusCode);
    assert.deepEqual(codes, [201, 204, 200], JSON.stringify(out));
    assert.equal(out.compositeResponse[2].body.Amount__c, 4);
  },

  async queryAllWithPaging(conn) {
    const name = 'Paged jsforce';
    const records = [];
    for (let i = 0; i < 230; i += 1) records.push({ Name: name, Amount__c: i });
    // allowRecursive: jsforce splits into collections of 200.
    const created = await conn.sobject(OBJECT).create(records, { allOrNone: true, allowRecursive: true });
    assert.equal(created.filter((r) => r.success).length, 230);
    const q = encodeURIComponent(`SELECT Id FROM ${OBJECT} WHERE Name = '${name}'`);
    let page = await conn.request({
      method: 'GET',
      url: `/services/data/v60.0/queryAll?q=${q}`,
      headers: { 'Sforce-Query-Options': 'batchSize=200' },
    });
    const ids = page.records.map((r) => r.Id);
    let pages = 1;
    while (!page.done) {
      page = await conn.queryMore(page.nextRecordsUrl);
      ids.push(...page.records.map((r) => r.Id));
      pages += 1;
    }
    assert.equal(pages, 2);
    assert.equal(new Set(ids).size, 230);
  },

  async createGetQuery(conn) {
    const created = await conn.sobject(OBJECT).create({ Name: 'From jsforce', Amount__c: 99.5 });
    assert.equal(created.success, true, JSON.stringify(created));
    const got = await conn.sobject(OBJECT).retrieve(created.id);
    assert.equal(got.Id, created.id);
    assert.equal(got.Name, 'From jsforce');
    const result = await conn.query(`SELECT Id, Name FROM ${OBJECT} WHERE Id = '${created.id}'`);
    assert.equal(result.totalSize, 1, JSON.stringify(result));
    assert.equal(result.records[0].Id, created.id);
  },

  async upsertByExternalId(conn) {
    const first = await conn.sobject(OBJECT).upsert({ Name: 'Upserted jsforce', Code__c: 'JS-UP-1', Amount__c: 20 }, 'Code__c');
    assert.equal(first.success, true, JSON.stringify(first));
    assert.equal(first.created, true, JSON.stringify(first));
    const second = await conn.sobject(OBJECT).upsert({ Code__c: 'JS-UP-1', Amount__c: 21 }, 'Code__c');
    assert.equal(second.success, true, JSON.stringify(second));
    // An update answers 204 (no body): jsforce then reports no `created`.
    assert.notEqual(second.created, true, JSON.stringify(second));
    const rows = await conn.query(`SELECT Id, Amount__c FROM ${OBJECT} WHERE Code__c = 'JS-UP-1'`);
    assert.equal(rows.totalSize, 1);
    assert.equal(rows.records[0].Amount__c, 21);
  },

  async describe(conn) {
    const d = await conn.sobject(OBJECT).describe();
    assert.equal(d.name, OBJECT);
    const byName = Object.fromEntries(d.fields.map((f) => [f.name, f]));
    for (const f of ['Id', 'Name', 'Amount__c', 'Code__c']) assert.ok(byName[f], f);
    assert.equal(byName.Amount__c.type, 'currency');
    const global = await conn.describeGlobal();
    assert.ok(global.sobjects.some((o) => o.name === OBJECT));
  },

  async search(conn) {
    const { id } = await conn.sobject(OBJECT).create({ Name: 'Quagga jsforce', Amount__c: 6 });
    const found = await conn.search(`FIND {Quagga} IN NAME FIELDS RETURNING ${OBJECT}(Id, Name)`);
    assert.ok(found.searchRecords.some((r) => r.Id === id), JSON.stringify(found));
  },

  async bulk2InsertAndQuery(conn) {
    const name = 'Bulk jsforce';
    const lines = ['Name,Amount__c'];
    for (let i = 0; i < 250; i += 1) lines.push(`${name},${i}`);
    lines.push(`${name},not a number`);
    const res = await conn.bulk2.loadAndWaitForResults({
      object: OBJECT,
      operation: 'insert',
      input: lines.join('\n') + '\n',
      pollInterval: 500,
      pollTimeout: 120000,
    });
    assert.equal(res.successfulResults.length, 250, JSON.stringify(res.failedResults));
    assert.equal(res.failedResults.length, 1);
    assert.ok(res.failedResults[0].sf__Error, JSON.stringify(res.failedResults[0]));
    const stream = await conn.bulk2.query(`SELECT Id, Amount__c FROM ${OBJECT} WHERE Name = '${name}'`, { pollInterval: 500, pollTimeout: 120000 });
    const rows = await stream.toArray();
    assert.equal(rows.length, 250);
  },

  async updateAndDelete(conn) {
    const { id } = await conn.sobject(OBJECT).create({ Name: 'To delete', Amount__c: 1 });
    const updated = await conn.sobject(OBJECT).update({ Id: id, Amount__c: 3 });
    assert.equal(updated.success, true, JSON.stringify(updated));
    const deleted = await conn.sobject(OBJECT).destroy(id);
    assert.equal(deleted.success, true, JSON.stringify(deleted));
  },
};

async function main() {
  const conn = await connect();
  let failed = 0;
  const names = Object.keys(CHECKS);
  for (const name of names) {
    try {
      await CHECKS[name](conn);
      console.log(`ok   jsforce ${name}`);
    } catch (e) {
      failed += 1;
      console.log(`FAIL jsforce ${name}: ${e && e.stack ? e.stack : e}`);
    }
  }
  console.log(`${names.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
