// jsforce against Mosaic over https:// with an access token.
//
// Run by scripts/compat-clients with MOSAIC_URL (https://...), MOSAIC_TOKEN
// and NODE_EXTRA_CA_CERTS (the development certificate); NODE_PATH points
// at the installed jsforce. Each check is one entry of CHECKS; add more for
// the compatibility suite. Prints "N passed, M failed" and exits non-zero on
// a failure.
'use strict';

const assert = require('node:assert/strict');
const jsforce = require('jsforce');

const OBJECT = process.env.MOSAIC_COMPAT_OBJECT || 'Invoice__c';

function connect() {
  return new jsforce.Connection({
    instanceUrl: process.env.MOSAIC_URL,
    accessToken: process.env.MOSAIC_TOKEN,
    version: '60.0',
  });
}

const CHECKS = {
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

  async updateAndDelete(conn) {
    const { id } = await conn.sobject(OBJECT).create({ Name: 'To delete', Amount__c: 1 });
    const updated = await conn.sobject(OBJECT).update({ Id: id, Amount__c: 3 });
    assert.equal(updated.success, true, JSON.stringify(updated));
    const deleted = await conn.sobject(OBJECT).destroy(id);
    assert.equal(deleted.success, true, JSON.stringify(deleted));
  },
};

async function main() {
  const conn = connect();
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
