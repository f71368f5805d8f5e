/**
 * Telemetry name drift: every metric and event name the workbook, dashboard and alerts query is one the app emits
 * (src/core/telemetry/names.ts), and the dashboard only pins workbook queries that exist. test/infra/kql.test.ts
 * compiles the same queries against the Application Insights schema.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { multilineStrings, read, stringLiterals } from './infraSource';

const NAMES_FILE = 'src/core/telemetry/names.ts';

interface WorkbookItem {
  type: number;
  name: string;
  content: { query?: string };
}

function workbookQueries(): { name: string; query: string }[] {
  const wb = JSON.parse(read('infra/app/workbook.json')) as { items: WorkbookItem[] };
  return wb.items.filter((i) => i.type === 3 && i.content.query).map((i) => ({ name: i.name, query: i.content.query! }));
}

/** Every KQL query infra/ deploys: workbook items (the dashboard reuses them) and the alert rules. */
function allKql(): { where: string; query: string }[] {
  return [
    ...workbookQueries().map((q) => ({ where: `workbook ${q.name}`, query: q.query })),
    ...multilineStrings(read('infra/app/alerts.bicep')).map((query, i) => ({ where: `alert #${i + 1}`, query })),
    ...multilineStrings(read('infra/app/dashboard.bicep')).map((query, i) => ({ where: `dashboard #${i + 1}`, query })),
  ];
}

/** Telemetry names a query refers to: `name == "x"`, `name in ("x", "y")`, and any "sluice.…" literal. */
export function namesIn(kql: string): string[] {
  const out = new Set<string>();
  for (const m of kql.matchAll(/\bname\s*(?:==|=~)\s*"([^"]+)"/g)) out.add(m[1]!);
  for (const m of kql.matchAll(/\bname\s+in~?\s*\(([^)]*)\)/g)) for (const s of m[1]!.matchAll(/"([^"]+)"/g)) out.add(s[1]!);
  for (const m of kql.matchAll(/"(sluice\.[A-Za-z0-9_.-]+)"/g)) out.add(m[1]!);
  return [...out];
}

test('the queries refer to Sluice telemetry by name', () => {
  const names = new Set(allKql().flatMap((q) => namesIn(q.query)));
  assert.ok(names.size >= 5, `found ${names.size} names`);
});

test('every metric/event name queried by infra is one the code emits (src/core/telemetry/names.ts)', () => {
  const emitted = new Set(stringLiterals([NAMES_FILE]).map((l) => l.text));
  const unknown = allKql().flatMap((q) => namesIn(q.query).filter((n) => !emitted.has(n)).map((n) => `${n} (${q.where})`));
  assert.deepEqual(unknown, [], `queried by infra but not in ${NAMES_FILE}`);
});

test('every dashboard tile is a workbook query', () => {
  const items = new Set(workbookQueries().map((q) => q.name));
  const used = [...read('infra/app/dashboard.bicep').matchAll(/\bkql\.(\w+)/g)].map((m) => m[1]!);
  assert.ok(used.length >= 8, 'the dashboard pins the key charts');
  for (const name of used) assert.ok(items.has(name), `dashboard pins kql.${name}, which infra/app/workbook.json lacks`);
});

test('workbook placeholders are the ones dashboard.bicep fills in', () => {
  const text = read('infra/app/workbook.json');
  const bicep = read('infra/app/dashboard.bicep');
  for (const p of text.match(/__[A-Z_]+__/g) ?? []) assert.ok(bicep.includes(`'${p}'`), `${p} is replaced in dashboard.bicep`);
  assert.match(bicep, /loadTextContent\('workbook\.json'\)/);
});
