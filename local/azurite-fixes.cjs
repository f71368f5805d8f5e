// Preloaded into the Azurite process by local/azurite.ts (`node --require`). Azurite keeps queue messages in one
// LokiJS collection for every queue (and a table's entities in one collection); some of its operations cost
// O(all messages or entities stored) where Azure Storage answers from an index. With a backlog of thousands of
// messages each dequeue or delete costs tens of milliseconds of Azurite's single thread, and the emulator, not the
// quota, bounds how fast a benchmark drains. None of the fixes changes a result:
//  1. LokiJS list removals and updates re-sort every index of the collection (at once, or lazily at the next
//     query), even for an empty list. Azurite updates the dequeued messages as a list, removes a list (the expired
//     messages, usually none) on every dequeue, update and delete, and garbage-collects each message body's extent
//     by a one-element findAndRemove. Lists of up to 32 documents go a document at a time (indices kept in place).
//  2. clearExpiredMessages scans the queue on every call; here it scans only once a message can have expired
//     (the earliest expiry of the queue is tracked as messages are inserted).
//  3. Lookups by several equalities ({account, queue, messageId}; a table's {PartitionKey, RowKey}) use the index
//     of the first key only: the account (every message), or a partition of 10,000 rows. The most selective
//     indexed key goes first.
//  4. Table queries run their filter over every entity of the table, then sort the matches, for each page. A
//     filter that pins the PartitionKey (`PartitionKey eq '...' and ...`, no `or`/`not`) starts from that
//     partition, in RowKey order, from the continuation on, and stops when the page is full, as Azure Table
//     Storage does.
// The fixes reach into Azurite's internals, so they are written for one Azurite version (WRITTEN_FOR, which
// package.json pins). Each fix checks the shape it patches; the last line this file writes to stderr reports which
// fixes applied, and local/azurite.ts refuses to start an Azurite where any did not.
'use strict';
const path = require('node:path');

/** The Azurite version these fixes were written for and checked against. */
const WRITTEN_FOR = '3.35.0';
const FIXES = ['list-updates', 'expiry-scan', 'selective-lookups', 'partition-queries'];
const REPORT_PREFIX = 'sluice azurite-fixes: ';
/** What applied, and why the others did not; written to stderr once this file has run. */
const report = { azurite: undefined, writtenFor: WRITTEN_FOR, applied: [], failed: [] };

class ShapeChanged extends Error {}

/** Runs one fix; a throw (or a changed shape) records it as not applied. */
function apply(name, fix) {
  try {
    fix();
    report.applied.push(name);
  } catch (err) {
    report.failed.push({ fix: name, reason: err instanceof Error ? err.message : String(err) });
  }
}

const azuriteDir = path.dirname(require.resolve('azurite/package.json', { paths: [process.cwd(), __dirname] }));
const requireFromAzurite = (id) => require(require.resolve(id, { paths: [azuriteDir] }));
/** The prototype of an Azurite store class, which must still have `methods`. */
function storePrototype(modulePath, methods) {
  const { default: Store } = requireFromAzurite(modulePath);
  const proto = Store && Store.prototype;
  const missing = methods.filter((m) => !proto || typeof proto[m] !== 'function');
  if (missing.length) throw new ShapeChanged(`${path.basename(modulePath)} has changed shape (no ${missing.join(', ')})`);
  return proto;
}
/** collection → change counter (fix 4 caches a partition's key order until its collection changes). */
const versions = new WeakMap();
const bump = (coll) => versions.set(coll, (versions.get(coll) ?? 0) + 1);

/** Loki with the members the fixes wrap, or a ShapeChanged error naming what is gone. */
function lokiWith(members) {
  const Loki = requireFromAzurite('lokijs');
  const missing = members.filter(([cls, m]) => typeof (Loki[cls] && Loki[cls].prototype[m]) !== 'function').map(([cls, m]) => `${cls}.${m}`);
  if (missing.length) throw new ShapeChanged(`lokijs has changed shape (no ${missing.join(', ')})`);
  return Loki;
}

// 1. Short lists are removed or updated a document at a time.
function patchListUpdates(Loki) {
  // Azurite dequeues at most 32 messages at a time: lists up to that size go one document at a time. (Every list
  // removal, Collection.remove([...]) and Resultset.remove() alike, ends in removeBatchByPositions.)
  const removeOne = Loki.Collection.prototype.remove;
  const removeBatchByPositions = Loki.Collection.prototype.removeBatchByPositions;
  Loki.Collection.prototype.removeBatchByPositions = function removeInPlace(positions) {
    bump(this);
    if (positions.length > 32) return removeBatchByPositions.call(this, positions);
    const docs = positions.map((p) => this.data[p]);
    for (const d of docs) removeOne.call(this, d);
    return undefined;
  };
  for (const name of ['insert', 'insertOne', 'remove', 'clear']) {
    const original = Loki.Collection.prototype[name];
    Loki.Collection.prototype[name] = function countingChanges(...args) {
      bump(this);
      return original.apply(this, args);
    };
  }
  const update = Loki.Collection.prototype.update;
  Loki.Collection.prototype.update = function updateInPlace(doc) {
    bump(this);
    if (!Array.isArray(doc) || doc.length > 32) return update.call(this, doc);
    for (const d of doc) update.call(this, d);
    return undefined;
  };
}

// 3. In a query (an AND of its keys), the most selective indexed equality goes first (same result in any order;
//    LokiJS narrows with the index of the first key only). Collection.find/findOne and chains (getMessages:
//    {account, queue, visible ≤ now}) all go through Resultset.find.
function patchSelectiveLookups(Loki) {
  const indexedSize = (coll, key, value) => {
    const index = coll.binaryIndices && coll.binaryIndices[key];
    if (!index || index.dirty || (typeof value !== 'string' && typeof value !== 'number')) return Infinity;
    const [lo, hi] = coll.calculateRange('$eq', key, value);
    return hi < lo ? 0 : hi - lo + 1;
  };
  const find = Loki.Resultset.prototype.find;
  Loki.Resultset.prototype.find = function selectiveFirst(query, ...rest) {
    // Only the first filter of a fresh result set can use an index.
    if (!this.filterInitialized && query && typeof query === 'object' && !Array.isArray(query)) {
      const keys = Object.keys(query);
      const equalities = keys.filter((k) => !k.startsWith('$') && (typeof query[k] === 'string' || typeof query[k] === 'number'));
      if (keys.length > 1 && equalities.length > 0) {
        let best = equalities[0];
        let bestSize = indexedSize(this.collection, best, query[best]);
        for (const k of equalities.slice(1)) {
          const size = indexedSize(this.collection, k, query[k]);
          if (size < bestSize) [best, bestSize] = [k, size];
        }
        if (best !== keys[0] && bestSize !== Infinity) query = { [best]: query[best], ...query };
      }
    }
    return find.call(this, query, ...rest);
  };
}

// 2. Scan for expired messages only when one can have expired.
function patchExpiryScan() {
  const proto = storePrototype('./dist/src/queue/persistence/LokiQueueMetadataStore', ['clearExpiredMessages', 'insertMessage']);
  const clear = proto.clearExpiredMessages;
  const insert = proto.insertMessage;
  const key = (account, queue) => `${account}\n${queue}`;
  const earliest = (store) => (store.__sluiceEarliestExpiry ??= new Map());
  /** A message's expiry, epoch ms (stored as a Date or a number); NaN if unreadable. */
  const expiryOf = (m) => (m.expirationTime instanceof Date ? m.expirationTime.getTime() : Number(m.expirationTime));
  proto.clearExpiredMessages = async function clearWhenDue(account, queue, context) {
    const known = earliest(this).get(key(account, queue));
    if (known !== undefined && Date.now() < known) return;
    await clear.call(this, account, queue, context);
    // Recompute the earliest expiry of what is left (one scan, only when something may have expired).
    let min = Infinity;
    const coll = this.db.getCollection(this.MESSAGES_COLLECTION);
    for (const doc of coll.find({ accountName: account, queueName: queue })) {
      const t = expiryOf(doc);
      min = Math.min(min, Number.isFinite(t) ? t : -Infinity);
    }
    earliest(this).set(key(account, queue), min);
  };
  proto.insertMessage = async function insertTrackingExpiry(message, context) {
    await insert.call(this, message, context);
    const k = key(message.accountName, message.queueName);
    const known = earliest(this).get(k);
    const t = expiryOf(message);
    // Unknown (never scanned): leave it so the next call scans. Unparseable expiry: scan every time, as Azurite does.
    if (known !== undefined) earliest(this).set(k, Number.isFinite(t) ? Math.min(known, t) : -Infinity);
  };
}

// 4. Table queries that pin the PartitionKey start from that partition.
/** The PartitionKey a filter requires, when it is a plain conjunction containing `PartitionKey eq '<literal>'`. */
function pinnedPartition(filter) {
  if (typeof filter !== 'string') return undefined;
  let pk;
  const token = /'(?:[^']|'')*'|\bPartitionKey\s+eq\s+'((?:[^']|'')*)'|\b([oO][rR]|[nN][oO][tT])\b/g;
  for (const m of filter.matchAll(token)) {
    if (m[2]) return undefined; // a disjunction or negation: the partition is not pinned
    if (m[1] !== undefined) {
      const value = m[1].replace(/''/g, "'");
      if (pk !== undefined && pk !== value) return undefined;
      pk = value;
    }
  }
  return pk;
}
/**
 * queryTableEntities runs its filter over every candidate, sorts every match, then keeps a page
 * (`.where(filter).where(continuation).sort(byKeys).limit(n)`), so reading a partition page by page was quadratic.
 * For a pinned partition the chain below starts from the partition's rows in RowKey order (cached until the
 * collection changes), skips to the continuation by binary search, and applies the same filters lazily until the
 * page is full. The rows, their order and the continuation are the same.
 */
const orderedCache = new WeakMap(); // collection → { version, byPartition: Map<pk, positions sorted by RowKey> }

function partitionInKeyOrder(coll, pk) {
  const version = versions.get(coll) ?? 0;
  let cache = orderedCache.get(coll);
  if (!cache || cache.version !== version) orderedCache.set(coll, (cache = { version, byPartition: new Map() }));
  let rows = cache.byPartition.get(pk);
  if (!rows) {
    const data = coll.data;
    rows = coll
      .chain()
      .find({ PartitionKey: pk })
      .filteredrows.filter((p) => data[p].PartitionKey === pk) // the index's equality is loose ('1' == '01')
      .sort((a, b) => (data[a].RowKey < data[b].RowKey ? -1 : data[a].RowKey > data[b].RowKey ? 1 : 0));
    cache.byPartition.set(pk, rows);
  }
  return rows;
}

function pinnedChain(coll, pk, nextPartitionKey, nextRowKey) {
  const rows = partitionInKeyOrder(coll, pk);
  const data = coll.data;
  let start = 0;
  if (nextPartitionKey !== undefined && nextPartitionKey > pk) start = rows.length;
  else if (nextPartitionKey === pk && nextRowKey !== undefined) {
    let lo = 0;
    let hi = rows.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (data[rows[mid]].RowKey < nextRowKey) lo = mid + 1;
      else hi = mid;
    }
    start = lo;
  }
  const resultset = coll.chain();
  const filters = [];
  resultset.where = function lazyWhere(fn) {
    filters.push(fn);
    return this;
  };
  resultset.sort = function alreadyInOrder() {
    return this; // one partition, in RowKey order: the (PartitionKey, RowKey) order
  };
  const limit = resultset.limit;
  resultset.limit = function firstMatches(qty) {
    const page = [];
    for (let i = start; i < rows.length && page.length < qty; i += 1) {
      const doc = data[rows[i]];
      if (filters.every((f) => f(doc))) page.push(rows[i]);
    }
    this.filteredrows = page;
    this.filterInitialized = true;
    return limit.call(this, qty);
  };
  return resultset;
}

function patchPartitionQueries() {
  const proto = storePrototype('./dist/src/table/persistence/LokiTableMetadataStore', ['queryTableEntities', 'getEntityCollection', 'decodeContinuationHeader']);
  const query = proto.queryTableEntities;
  const getCollection = proto.getEntityCollection;
  // queryTableEntities takes its collection and builds its whole query synchronously, before its first await;
  // for that span the collection's chain() starts from the pinned partition.
  proto.getEntityCollection = function partitionScoped(...args) {
    const coll = getCollection.apply(this, args);
    const pinned = this.__sluicePinned;
    if (pinned === undefined || !coll) return coll;
    const scoped = Object.create(coll);
    scoped.chain = () => pinnedChain(coll, pinned.pk, pinned.nextPartitionKey, pinned.nextRowKey);
    return scoped;
  };
  proto.queryTableEntities = function queryPinned(context, account, table, queryOptions, nextPartitionKey, nextRowKey) {
    const pk = pinnedPartition(queryOptions && queryOptions.filter);
    this.__sluicePinned =
      pk === undefined
        ? undefined
        : { pk, nextPartitionKey: this.decodeContinuationHeader(nextPartitionKey), nextRowKey: this.decodeContinuationHeader(nextRowKey) };
    try {
      return query.call(this, context, account, table, queryOptions, nextPartitionKey, nextRowKey);
    } finally {
      this.__sluicePinned = undefined;
    }
  };
}

report.azurite = requireFromAzurite('./package.json').version;
if (report.azurite !== WRITTEN_FOR) {
  const reason = `written for Azurite ${WRITTEN_FOR}, found ${report.azurite}: check each fix against its code, then update WRITTEN_FOR and the pin in package.json`;
  report.failed.push(...FIXES.map((fix) => ({ fix, reason })));
} else {
  apply(FIXES[0], () => patchListUpdates(lokiWith([['Collection', 'remove'], ['Collection', 'removeBatchByPositions'], ['Collection', 'insert'], ['Collection', 'insertOne'], ['Collection', 'clear'], ['Collection', 'update']])));
  apply(FIXES[1], patchExpiryScan);
  apply(FIXES[2], () => patchSelectiveLookups(lokiWith([['Resultset', 'find'], ['Collection', 'calculateRange']])));
  apply(FIXES[3], patchPartitionQueries);
}
process.stderr.write(`${REPORT_PREFIX}${JSON.stringify(report)}\n`);

module.exports = { pinnedPartition, WRITTEN_FOR, FIXES, REPORT_PREFIX, report };
