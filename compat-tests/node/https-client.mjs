// Run by test/session.test.mjs in a child process whose NODE_EXTRA_CA_CERTS names qldb-local's
// generated CA (Node reads it only at start-up): the Node.js driver configured as AWS's DMV
// sample configures it (an https.Agent with keepAlive and maxSockets = the pool size), and the
// JS SDK control plane, both over https://. Prints one JSON line; exits non-zero on failure.
//
//   node https-client.mjs <https endpoint> <ledger>

import { Agent } from 'node:https';

import { DescribeLedgerCommand, QLDBClient } from '@aws-sdk/client-qldb';
import { QldbDriver, RetryConfig } from 'amazon-qldb-driver-nodejs';

const [endpoint, ledger] = process.argv.slice(2);
const region = 'us-east-1';
const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };

const client = new QLDBClient({ endpoint, region, credentials, maxAttempts: 1 });
const described = await client.send(new DescribeLedgerCommand({ Name: ledger }));
client.destroy();

const maxConcurrentTransactions = 10;
const driver = new QldbDriver(
  ledger,
  { endpoint, region, credentials },
  { httpAgent: new Agent({ keepAlive: true, maxSockets: maxConcurrentTransactions }) },
  maxConcurrentTransactions,
  new RetryConfig(2),
);
try {
  const ids = await driver.executeLambda(async (txn) => {
    await txn.execute('CREATE TABLE Secure');
    const inserted = (await txn.execute('INSERT INTO Secure ?', { n: 1 })).getResultList();
    return inserted.map((r) => r.get('documentId').stringValue());
  });
  const found = await driver.executeLambda(async (txn) =>
    (await txn.execute('SELECT VALUE id FROM Secure AS s BY id WHERE s.n = 1'))
      .getResultList().map((v) => v.stringValue()));
  console.log(JSON.stringify({ state: described.State, inserted: ids, found }));
} finally {
  driver.close();
}
// Keep-alive sockets must not hold the process open.
process.exit(0);
