/**
 * local/azurite-fixes.cjs: every fix applies to the installed Azurite, which with them answers exactly as unpatched
 * Azurite does (expiry, pop receipts, queues kept apart, table pages), and the fixes really take the
 * full-collection work off the per-message path (checked on the store itself, in this process, without timing).
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { TableClient } from '@azure/data-tables';
import { QueueClient } from '@azure/storage-queue';
import { startAzurite, type RunningAzurite } from '../../local/azurite';

const ROOT = join(__dirname, '..', '..', '..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let azurite: RunningAzurite;
before(async () => {
  azurite = await startAzurite({ inMemory: true, rootDir: ROOT, fixes: true });
});
after(async () => {
  await azurite?.stop();
});

test('every fix applies to the installed Azurite', () => {
  assert.deepEqual(azurite.fixes, ['list-updates', 'expiry-scan', 'selective-lookups', 'partition-queries']);
});

test('queues behave as unpatched with the fixes: expiry, pop receipts, one queue never sees another’s messages', async () => {
  const a = new QueueClient(azurite.connectionString, 'fixes-a');
  const b = new QueueClient(azurite.connectionString, 'fixes-b');
  await a.create();
  await b.create();
  for (let i = 0; i < 50; i += 1) await a.sendMessage(`a-${i}`);
  await b.sendMessage('b-long');
  // Inserted after the queue's earliest expiry was learnt (the sends above made Azurite scan): must still expire.
  await b.sendMessage('b-short', { messageTimeToLive: 1 });
  const got = await a.receiveMessages({ numberOfMessages: 32 });
  assert.equal(got.receivedMessageItems.length, 32);
  const first = got.receivedMessageItems[0]!;
  await assert.rejects(a.deleteMessage(first.messageId, 'not-the-receipt'), (err: { statusCode?: number }) => err.statusCode === 400);
  await assert.rejects(b.deleteMessage(first.messageId, first.popReceipt), (err: { statusCode?: number }) => err.statusCode === 404, "queue b can't delete queue a's message");
  for (const m of got.receivedMessageItems) await a.deleteMessage(m.messageId, m.popReceipt);
  assert.equal((await a.getProperties()).approximateMessagesCount, 18);

  await sleep(1_500);
  const left = await b.receiveMessages({ numberOfMessages: 32 });
  assert.deepEqual(left.receivedMessageItems.map((m) => m.messageText), ['b-long'], 'the 1 s message expired, the other stayed');
  const m = left.receivedMessageItems[0]!;
  const updated = await b.updateMessage(m.messageId, m.popReceipt, 'b-long-2', 0);
  const again = await b.receiveMessages();
  assert.equal(again.receivedMessageItems[0]?.messageText, 'b-long-2');
  assert.notEqual(again.receivedMessageItems[0]?.popReceipt, updated.popReceipt);
});

test('the fixes keep the message indices clean and look messages up by id (in-process store)', async () => {
  const req = createRequire(join(ROOT, 'package.json'));
  req(join(ROOT, 'local', 'azurite-fixes.cjs'));
  const Store = req('azurite/dist/src/queue/persistence/LokiQueueMetadataStore').default as new (path: string, inMemory: boolean) => {
    init(): Promise<void>;
    createQueue(q: object): Promise<unknown>;
    insertMessage(m: object): Promise<void>;
    getMessages(account: string, queue: string, next: Date, popReceipt: string, n: number): Promise<{ messageId: string }[]>;
    deleteMessage(account: string, queue: string, id: string, popReceipt: string): Promise<void>;
    db: { getCollection(name: string): { flagBinaryIndexesDirty(): void; find(q: object): unknown[] } };
    MESSAGES_COLLECTION: string;
  };
  const store = new Store(join(ROOT, '.azurite-fixes-test.json'), true);
  await store.init();
  await store.createQueue({ accountName: 'acc', name: 'q', metadata: undefined });
  const now = Date.now();
  for (let i = 0; i < 500; i += 1) {
    await store.insertMessage({
      accountName: 'acc', queueName: 'q', messageId: `m${i}`, popReceipt: 'p0', timeNextVisible: new Date(now - 1),
      insertionTime: new Date(now), expirationTime: new Date(now + (i === 7 ? -1 : 3_600_000)), dequeueCount: 0,
      persistency: { id: 'x', offset: 0, count: 1 },
    });
  }
  const coll = store.db.getCollection(store.MESSAGES_COLLECTION);
  let resorts = 0;
  const flag = coll.flagBinaryIndexesDirty.bind(coll);
  coll.flagBinaryIndexesDirty = () => {
    resorts += 1;
    flag();
  };
  // The first call scans for expired messages (m7), later ones know nothing can have expired yet.
  assert.equal((await store.getMessages('acc', 'q', new Date(now + 30_000), 'p0', 1)).length, 1);
  resorts = 0;
  const got = await store.getMessages('acc', 'q', new Date(now + 30_000), 'p1', 10);
  assert.equal(got.length, 10);
  assert.ok(!got.some((m) => m.messageId === 'm7'), 'the expired message was cleared, not delivered');
  assert.equal(coll.find({ messageId: 'm7' }).length, 0);
  for (const m of got) await store.deleteMessage('acc', 'q', m.messageId, 'p1');
  assert.equal(resorts, 0, 'a dequeue or a delete must not leave the indices to be re-sorted');
  assert.equal(coll.find({ accountName: 'acc', queueName: 'q' }).length, 489);
});

test('table queries pinned to a partition answer as unpatched: exact partition, pages in key order, or-filters whole', async () => {
  const table = TableClient.fromConnectionString(azurite.connectionString, 'fixestable', { allowInsecureConnection: true });
  await table.createTable();
  const rows: [string, string][] = [['p1', 'a'], ['p1', 'b'], ['p1', 'c'], ['p1', 'd'], ['p2', 'a'], ['1', 'x'], ['01', 'y'], ["o'r", 'z']];
  for (const [partitionKey, rowKey] of rows) await table.createEntity({ partitionKey, rowKey, v: `${partitionKey}/${rowKey}` });
  const list = async (filter: string, pageSize = 2) => {
    const out: string[] = [];
    for await (const page of table.listEntities<{ v: string }>({ queryOptions: { filter } }).byPage({ maxPageSize: pageSize })) out.push(...page.map((e) => e.v));
    return out;
  };
  assert.deepEqual(await list("PartitionKey eq 'p1' and RowKey ge 'b'"), ['p1/b', 'p1/c', 'p1/d']);
  assert.deepEqual(await list("PartitionKey eq '1'"), ['1/x'], "'01' is another partition");
  assert.deepEqual(await list("PartitionKey eq 'o''r'"), ["o'r/z"]);
  assert.deepEqual(await list("PartitionKey eq 'p1' or PartitionKey eq 'p2'", 10), ['p1/a', 'p1/b', 'p1/c', 'p1/d', 'p2/a']);
  assert.deepEqual(await list("RowKey eq 'a'"), ['p1/a', 'p2/a']);
  assert.equal((await table.getEntity<{ v: string }>('p1', 'c')).v, 'p1/c');
  // A bigger partition written out of order, read in small pages: every row once, in RowKey order.
  const keys = Array.from({ length: 40 }, (_, i) => `r${String(i).padStart(2, '0')}`);
  const shuffled = [...keys].sort((a, b) => ((a.charCodeAt(2) * 7919) % 13) - ((b.charCodeAt(2) * 7919) % 13) || b.localeCompare(a));
  for (const rowKey of shuffled) await table.createEntity({ partitionKey: 'big', rowKey, v: `big/${rowKey}` });
  assert.deepEqual(await list("PartitionKey eq 'big'", 3), keys.map((k) => `big/${k}`));
  assert.deepEqual(await list("PartitionKey eq 'big' and RowKey ge 'r35'", 2), keys.slice(35).map((k) => `big/${k}`));
  // Writes after a read show up in the next one (the partition's key order is not served stale).
  await table.createEntity({ partitionKey: 'big', rowKey: 'r355', v: 'big/r355' });
  await table.deleteEntity('big', 'r37');
  await table.updateEntity({ partitionKey: 'big', rowKey: 'r38', v: 'big/r38-2' }, 'Replace');
  assert.deepEqual(await list("PartitionKey eq 'big' and RowKey ge 'r35'", 2), ['big/r35', 'big/r355', 'big/r36', 'big/r38-2', 'big/r39']);
  assert.deepEqual(await list("PartitionKey eq 'big' and v ne 'big/r36' and RowKey gt 'r34'", 10), ['big/r35', 'big/r355', 'big/r38-2', 'big/r39']);
});
