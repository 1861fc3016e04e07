// Session-API compatibility of qldb-local with the Node.js QLDB driver
// (amazon-qldb-driver-nodejs 3.1.0 on @aws-sdk/client-qldb-session 3.918.0, ion-js 5.2.1).
//
// Each server is a real qldb-local process: $QLDB_LOCAL_BIN (default <repo>/target/release/qldb-local,
// i.e. ../../target/release/qldb-local relative to compat-tests/node) started with `serve --listen 127.0.0.1:<free port>
// --data-dir <tmp>`, polled on GET /health and stopped with SIGTERM.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { CreateLedgerCommand, DescribeLedgerCommand, QLDBClient } from '@aws-sdk/client-qldb';
import {
  isBadRequestException,
  isInvalidSessionException,
  isTransactionExpiredException,
  QldbDriver,
  RetryConfig,
} from 'amazon-qldb-driver-nodejs';
import { load, IonTypes } from 'ion-js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BINARY = process.env.QLDB_LOCAL_BIN || path.resolve(HERE, '../../../target/release/qldb-local');
const REGION = 'us-east-1';
const CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };
const ID_RE = /^[A-Za-z0-9]{22}$/;

// JS v3 reads AWS_REGION (not AWS_DEFAULT_REGION); everything below also passes it explicitly.
process.env.AWS_REGION ??= REGION;
process.env.AWS_EC2_METADATA_DISABLED = 'true';

// ------------------------------------------------------------------ server process

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function startServer(extraArgs = []) {
  if (!existsSync(BINARY)) {
    throw new Error(`${BINARY} not found; build it with cargo build --release or set QLDB_LOCAL_BIN`);
  }
  const port = await freePort();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'qldb-local-node-'));
  const args = ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, ...extraArgs];
  const proc = spawn(BINARY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  let exited = null;
  const exitPromise = new Promise((resolve) => proc.on('exit', (code, signal) => {
    exited = { code, signal };
    resolve(exited);
  }));
  const endpoint = `http://127.0.0.1:${port}`;

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error(`qldb-local exited early (${JSON.stringify(exited)}): ${log.slice(-4000)}`);
    try {
      const r = await fetch(`${endpoint}/health`);
      if (r.status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`qldb-local did not become ready: ${log.slice(-4000)}`);
    }
    await sleep(50);
  }

  return {
    endpoint,
    dataDir,
    log: () => log.slice(-4000),
    async stop() {
      if (!exited) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
        await exitPromise;
        clearTimeout(timer);
      }
      rmSync(dataDir, { recursive: true, force: true });
      return exited;
    },
  };
}

// ------------------------------------------------------------------ clients

let ledgerCounter = 0;

async function createLedger(server) {
  const name = `node-${process.pid}-${Date.now() % 100000}-${ledgerCounter++}`;
  const client = new QLDBClient({ endpoint: server.endpoint, region: REGION, credentials: CREDENTIALS, maxAttempts: 1 });
  try {
    const created = await client.send(new CreateLedgerCommand({
      Name: name, PermissionsMode: 'ALLOW_ALL', DeletionProtection: false,
    }));
    assert.equal(created.Name, name);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const d = await client.send(new DescribeLedgerCommand({ Name: name }));
      if (d.State === 'ACTIVE') break;
      assert.ok(Date.now() < deadline, `ledger ${name} never became ACTIVE`);
      await sleep(50);
    }
  } finally {
    client.destroy();
  }
  return name;
}

function makeDriver(server, ledger, retryConfig) {
  const options = { endpoint: server.endpoint, region: REGION, credentials: CREDENTIALS };
  return retryConfig
    ? new QldbDriver(ledger, options, {}, 0, retryConfig)
    : new QldbDriver(ledger, options);
}

/** Runs one statement in its own transaction; returns the result list (ion-js dom values). */
function run(driver, statement, ...params) {
  return driver.executeLambda(async (txn) => (await txn.execute(statement, ...params)).getResultList());
}

function onlyId(row, key) {
  assert.deepEqual(row.fieldNames(), [key]);
  const id = row.get(key).stringValue();
  assert.match(id, ID_RE);
  return id;
}

async function fill(driver, table, count) {
  for (let lo = 0; lo < count; lo += 40) {
    const docs = [];
    for (let i = lo; i < Math.min(lo + 40, count); i++) docs.push({ n: i });
    const rows = await run(driver, `INSERT INTO ${table} ?`, docs);
    assert.equal(rows.length, docs.length);
  }
}

// ------------------------------------------------------------------ the shared server

let server;

before(async () => {
  server = await startServer(['--max-ledgers', '100']);
});

after(async () => {
  if (server) {
    const exit = await server.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, 'qldb-local should exit cleanly on SIGTERM');
  }
});

const VEHICLE_TEXT = `{
  VIN: "1N4AL11D75C109151",
  Year: 2019,
  Price: 130.750,
  Mileage: 1180591620717411303424,
  Ratio: 1.5e0,
  Registered: 2019-06-05T,
  PurchasedAt: 2019-06-05T20:53:32.123-08:00,
  Photo: {{aGVsbG8gd29ybGQ=}},
  Kind: sedan,
  Color: null.string,
  Owners: { PrimaryOwner: { PersonId: "294jJ3YUoH1IEEm8GSabOs", Shares: [0.5, 0.50] }, SecondaryOwners: [] }
}`;
const VIN = '1N4AL11D75C109151';

// ------------------------------------------------------------------ tests

test('executeLambda: CREATE TABLE, CREATE INDEX, INSERT, SELECT, UPDATE, DELETE, getTableNames', async () => {
  const ledger = await createLedger(server);
  const driver = makeDriver(server, ledger);
  try {
    const [created, indexed] = await driver.executeLambda(async (txn) => [
      (await txn.execute('CREATE TABLE Vehicle')).getResultList(),
      (await txn.execute('CREATE INDEX ON Vehicle (VIN)')).getResultList(),
    ]);
    assert.equal(created.length, 1);
    assert.equal(indexed.length, 1);
    const tableId = onlyId(created[0], 'tableId');
    assert.equal(onlyId(indexed[0], 'tableId'), tableId);

    // INSERT with an Ion parameter (a dom value, so every type is exact).
    const vehicle = load(VEHICLE_TEXT);
    const inserted = await run(driver, 'INSERT INTO Vehicle ?', vehicle);
    assert.equal(inserted.length, 1);
    const docId = onlyId(inserted[0], 'documentId');

    // SELECT by the indexed field with a parameter: full Ion fidelity.
    const rows = await run(driver, 'SELECT * FROM Vehicle WHERE VIN = ?', VIN);
    assert.equal(rows.length, 1);
    const doc = rows[0];
    assert.ok(doc.ionEquals(vehicle), `document changed on the way: ${JSON.stringify(doc)}`);
    assert.equal(doc.get('Price').getType(), IonTypes.DECIMAL);
    assert.equal(doc.get('Price').decimalValue().toString(), '130.750');
    assert.equal(doc.get('Mileage').bigIntValue(), 2n ** 70n);
    assert.equal(doc.get('Ratio').getType(), IonTypes.FLOAT);
    assert.equal(doc.get('Registered').timestampValue().toString(), '2019-06-05T');
    assert.equal(doc.get('PurchasedAt').timestampValue().toString(), '2019-06-05T20:53:32.123-08:00');
    assert.equal(doc.get('Photo').getType(), IonTypes.BLOB);
    assert.equal(Buffer.from(doc.get('Photo').uInt8ArrayValue()).toString(), 'hello world');
    assert.equal(doc.get('Kind').getType(), IonTypes.SYMBOL);
    assert.ok(doc.get('Color').isNull());
    assert.equal(doc.get('Color').getType(), IonTypes.STRING);
    assert.deepEqual(
      doc.get('Owners', 'PrimaryOwner', 'Shares').elements().map((d) => d.decimalValue().toString()),
      ['0.5', '0.50'],
    );
    assert.deepEqual(await run(driver, 'SELECT * FROM Vehicle WHERE VIN = ?', 'nope'), []);

    const byId = await run(driver, 'SELECT VALUE id FROM Vehicle AS v BY id WHERE v.VIN = ?', VIN);
    assert.deepEqual(byId.map((v) => v.stringValue()), [docId]);

    // UPDATE with parameters: one {documentId} of the same document per assignment, as QLDB
    // answered (AWS's Node.js DMV sample test asserts two equal values for two assignments).
    const updated = await run(driver, 'UPDATE Vehicle AS v SET v.Price = ?, v.Year = ? WHERE v.VIN = ?',
      load('99.990'), 2020, VIN);
    assert.equal(updated.length, 2);
    assert.equal(onlyId(updated[0], 'documentId'), docId);
    assert.ok(updated[0].ionEquals(updated[1]));
    const afterUpdate = await run(driver, 'SELECT v.Price, v.Year FROM Vehicle AS v WHERE v.VIN = ?', VIN);
    assert.equal(afterUpdate.length, 1);
    assert.equal(afterUpdate[0].get('Price').decimalValue().toString(), '99.990');
    assert.equal(afterUpdate[0].get('Year').numberValue(), 2020);

    // DELETE: one {documentId}; the document is gone.
    const deleted = await run(driver, 'DELETE FROM Vehicle AS v WHERE v.VIN = ?', VIN);
    assert.equal(deleted.length, 1);
    assert.equal(onlyId(deleted[0], 'documentId'), docId);
    assert.deepEqual(await run(driver, 'SELECT * FROM Vehicle'), []);

    // getTableNames(): SELECT name FROM information_schema.user_tables WHERE status = 'ACTIVE'
    assert.deepEqual(await driver.getTableNames(), ['Vehicle']);
  } finally {
    driver.close();
  }
});

test('INSERT of a JS array parameter returns one documentId per document', async () => {
  const ledger = await createLedger(server);
  const driver = makeDriver(server, ledger);
  try {
    await run(driver, 'CREATE TABLE T');
    const rows = await run(driver, 'INSERT INTO T ?', [{ a: 1 }, { a: 2, b: 'x' }, { a: 3, c: [true, null] }]);
    assert.equal(rows.length, 3);
    assert.equal(new Set(rows.map((r) => onlyId(r, 'documentId'))).size, 3);
    const as = (await run(driver, 'SELECT VALUE t.a FROM T AS t WHERE t.a IN (?, ?)', 1, 3))
      .map((v) => v.numberValue()).sort();
    assert.deepEqual(as, [1, 3]);
  } finally {
    driver.close();
  }
});

test('multi-page results: execute() buffers every page, executeAndStreamResults() streams them', async () => {
  const ledger = await createLedger(server);
  const driver = makeDriver(server, ledger);
  try {
    await run(driver, 'CREATE TABLE Big');
    await fill(driver, 'Big', 450); // > 2 pages of the default 200 values
    const all = await run(driver, 'SELECT VALUE b.n FROM Big AS b');
    assert.deepEqual(all.map((v) => v.numberValue()).sort((x, y) => x - y), [...Array(450).keys()]);

    const streamed = await driver.executeLambda(async (txn) => {
      const out = [];
      for await (const v of await txn.executeAndStreamResults('SELECT * FROM Big')) {
        out.push(v.get('n').numberValue());
      }
      return out;
    });
    assert.deepEqual(streamed.sort((x, y) => x - y), [...Array(450).keys()]);
  } finally {
    driver.close();
  }
});

test('statement errors reject with BadRequestException and are not retried', async () => {
  const ledger = await createLedger(server);
  const driver = makeDriver(server, ledger);
  try {
    await run(driver, 'CREATE TABLE T');
    let calls = 0;
    await assert.rejects(
      driver.executeLambda(async (txn) => {
        calls += 1;
        await txn.execute("INSERT INTO T VALUE {'a': 1}");
        await txn.execute('SELECT * FROM NoSuchTable');
      }),
      (e) => {
        assert.ok(isBadRequestException(e), `expected BadRequestException, got ${e.name}: ${e.message}`);
        assert.equal(e.$metadata.httpStatusCode, 400);
        return true;
      },
    );
    assert.equal(calls, 1);
    assert.deepEqual(await run(driver, 'SELECT * FROM T'), []);
    assert.equal((await run(driver, "INSERT INTO T VALUE {'a': 2}")).length, 1);
  } finally {
    driver.close();
  }
});

test('concurrent increments are resolved by OCC retries to the exact total', async () => {
  const ledger = await createLedger(server);
  const retry = new RetryConfig(10_000, () => Math.random() * 5);
  const driver = makeDriver(server, ledger, retry);
  try {
    await run(driver, 'CREATE TABLE Counter');
    await run(driver, 'CREATE INDEX ON Counter (name)');
    await run(driver, "INSERT INTO Counter VALUE {'name': 'c', 'n': 0}");
    const perWorker = 15;
    let attempts = 0;
    const increment = () => driver.executeLambda(async (txn) => {
      attempts += 1;
      const current = (await txn.execute('SELECT VALUE c.n FROM Counter AS c WHERE c.name = ?', 'c')).getResultList();
      assert.equal(current.length, 1);
      const rows = (await txn.execute('UPDATE Counter AS c SET c.n = ? WHERE c.name = ?',
        current[0].numberValue() + 1, 'c')).getResultList();
      assert.equal(rows.length, 1);
    });
    const worker = async () => {
      for (let i = 0; i < perWorker; i++) await increment();
    };
    await Promise.all([worker(), worker(), worker()]);
    const n = await run(driver, "SELECT VALUE c.n FROM Counter AS c WHERE c.name = 'c'");
    assert.equal(n[0].numberValue(), 3 * perWorker);
    assert.ok(attempts >= 3 * perWorker);
  } finally {
    driver.close();
  }
});

test('a transaction outliving --transaction-timeout-ms is reported as expired; the driver recovers', async () => {
  const short = await startServer(['--transaction-timeout-ms', '1000']);
  try {
    const ledger = await createLedger(short);
    const driver = makeDriver(short, ledger);
    try {
      await run(driver, 'CREATE TABLE T');
      let txId;
      let calls = 0;
      await assert.rejects(
        driver.executeLambda(async (txn) => {
          calls += 1;
          txId = txn.getTransactionId();
          await txn.execute("INSERT INTO T VALUE {'a': 1}");
          await sleep(1500);
          await txn.execute('SELECT * FROM T');
        }),
        (e) => {
          assert.ok(isInvalidSessionException(e), `expected InvalidSessionException, got ${e.name}: ${e.message}`);
          assert.ok(isTransactionExpiredException(e), `not recognised as expired: ${e.message}`);
          assert.match(e.message, /Transaction .* has expired/);
          assert.ok(e.message.includes(txId), e.message);
          return true;
        },
      );
      assert.equal(calls, 1, 'an expired transaction must not be retried');
      assert.deepEqual(await run(driver, 'SELECT * FROM T'), []);
      assert.equal((await run(driver, "INSERT INTO T VALUE {'a': 2}")).length, 1);
    } finally {
      driver.close();
    }
  } finally {
    await short.stop();
  }
});

test("metrics: a join reads its inner side once per outer row (the driver suite's 'Can return metrics for executes')", async () => {
  const ledger = await createLedger(server);
  const driver = makeDriver(server, ledger);
  try {
    await run(driver, 'CREATE TABLE M');
    await run(driver, "INSERT INTO M << {'col': 1}, {'col': 2}, {'col': 3} >>");
    const result = await driver.executeLambda(async (txn) =>
      txn.execute('SELECT * FROM M as a, M as b, M as c, M as d, M as e, M as f'));
    assert.equal(result.getResultList().length, 729);
    assert.ok(result.getConsumedIOs());
    assert.ok(result.getTimingInformation());
    // 3 + 9 + 27 + 81 + 243 + 729, summed over every page.
    assert.equal(result.getConsumedIOs().getReadIOs(), 1092);
    assert.ok(result.getTimingInformation().getProcessingTimeMilliseconds() > 0);
    const point = await driver.executeLambda(async (txn) => txn.execute('SELECT * FROM M WHERE col = 1'));
    assert.equal(point.getResultList().length, 1);
    assert.ok(point.getTimingInformation().getProcessingTimeMilliseconds() > 0);
  } finally {
    driver.close();
  }
});

test("the DMV sample's renewal: a two-assignment UPDATE answers two equal {documentId} values", async () => {
  const ledger = await createLedger(server);
  const driver = makeDriver(server, ledger);
  try {
    await run(driver, 'CREATE TABLE DriversLicense');
    const [ins] = await run(driver, 'INSERT INTO DriversLicense ?',
      load('{LicenseNumber: "LEWISR261LL", ValidFromDate: 2017-12-06T, ValidToDate: 2022-10-15T}'));
    const docId = onlyId(ins, 'documentId');
    const rows = await run(driver,
      'UPDATE DriversLicense AS d SET d.ValidFromDate = ?, d.ValidToDate = ? WHERE d.LicenseNumber = ?',
      load('2019-12-06T'), load('2024-10-15T'), 'LEWISR261LL');
    assert.equal(rows.length, 2);
    assert.ok(rows[0].ionEquals(rows[1]));
    assert.equal(onlyId(rows[0], 'documentId'), docId);
    const [doc] = await run(driver, 'SELECT d.ValidToDate FROM DriversLicense AS d');
    assert.equal(doc.get('ValidToDate').timestampValue().toString(), '2024-10-15T');
  } finally {
    driver.close();
  }
});

test('HTTPS (--tls): the driver configured as the DMV sample (https.Agent) and the SDK trust the CA via NODE_EXTRA_CA_CERTS', async () => {
  const tls = await startServer(['--tls']);
  try {
    // The same port serves plain HTTP too: the ledger is made over http://.
    const ledger = await createLedger(tls);
    const endpoint = tls.endpoint.replace('http://', 'https://');
    const ca = path.join(tls.dataDir, 'tls', 'ca.pem');

    // Node reads NODE_EXTRA_CA_CERTS only at start-up: the clients run in a child process.
    const child = spawn(process.execPath, [path.resolve(HERE, '../https-client.mjs'), endpoint, ledger], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: ca },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const code = await new Promise((resolve) => child.on('exit', resolve));
    assert.equal(code, 0, `https-client failed: ${err}${out}`);
    const result = JSON.parse(out.trim().split('\n').pop());
    assert.equal(result.state, 'ACTIVE');
    assert.equal(result.inserted.length, 1);
    assert.match(result.inserted[0], ID_RE);
    assert.deepEqual(result.found, result.inserted);

    // Without the CA the certificate is not trusted.
    const untrusted = new QLDBClient({ endpoint, region: REGION, credentials: CREDENTIALS, maxAttempts: 1 });
    try {
      await assert.rejects(untrusted.send(new DescribeLedgerCommand({ Name: ledger })),
        (e) => /certificate/i.test(`${e.code} ${e.message}`));
    } finally {
      untrusted.destroy();
    }
  } finally {
    await tls.stop();
  }
});

test('STANDARD permissions mode: IAM policies of --credentials-file principals gate PartiQL statements', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'qldb-local-node-creds-'));
  const file = path.join(dir, 'credentials.json');
  const ledgerArn = (name) => `arn:aws:qldb:${REGION}:000000000000:ledger/${name}`;
  const ledger = `node-std-${process.pid}-${Date.now() % 100000}`;
  writeFileSync(file, JSON.stringify({
    credentials: [{
      access_key_id: 'reader',
      secret_access_key: 'reader-secret',
      policies: [{
        Version: '2012-10-17',
        Statement: [
          { Effect: 'Allow', Action: 'qldb:SendCommand', Resource: ledgerArn(ledger) },
          { Effect: 'Allow', Action: 'qldb:PartiQLSelect', Resource: `${ledgerArn(ledger)}/table/*` },
        ],
      }],
    }],
  }));
  const std = await startServer(['--credentials-file', file]);
  const admin = new QLDBClient({ endpoint: std.endpoint, region: REGION, credentials: CREDENTIALS, maxAttempts: 1 });
  try {
    await admin.send(new CreateLedgerCommand({ Name: ledger, PermissionsMode: 'STANDARD', DeletionProtection: false }));
    const adminDriver = makeDriver(std, ledger);
    try {
      await run(adminDriver, 'CREATE TABLE Cars');
      await run(adminDriver, "INSERT INTO Cars VALUE {'make': 'VW'}");
    } finally {
      adminDriver.close();
    }

    const reader = new QldbDriver(ledger, {
      endpoint: std.endpoint, region: REGION,
      credentials: { accessKeyId: 'reader', secretAccessKey: 'reader-secret' },
    }, {}, 0, new RetryConfig(0));
    try {
      const rows = await run(reader, 'SELECT c.make FROM Cars AS c');
      assert.deepEqual(rows.map((r) => r.get('make').stringValue()), ['VW']);
      await assert.rejects(run(reader, "INSERT INTO Cars VALUE {'make': 'Kia'}"), (e) => {
        assert.equal(e.name, 'AccessDeniedException', `${e.name}: ${e.message}`);
        assert.equal(e.message, 'Access denied. Unable to run the statement due to insufficient '
          + 'permissions or an improper variable reference');
        return true;
      });
      // The denied statement left nothing behind.
      assert.equal((await run(reader, 'SELECT * FROM Cars')).length, 1);
    } finally {
      reader.close();
    }
  } finally {
    admin.destroy();
    await std.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
