/**
 * Every KQL query infra deploys (workbook items, which the dashboard tiles reuse, and the scheduled-query alert
 * rules) compiles against the Application Insights schema with the Kusto language service, and the columns the
 * dashboard charts and the alert rules read are in their query's result. A misspelt column, table or function, or
 * a type error, fails here instead of leaving an empty tile or a silent alert in Azure.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { filesUnder, read } from './infraSource';

// ---------------------------------------------------------------------------------------------------------------
// The language service: a Bridge.NET build of Kusto.Language that defines the global `Kusto` when loaded (after
// Bridge's runtime). Typed here only as far as this test uses it.

interface KList<T> {
  Count: number;
  getItem(i: number): T;
}
interface KDiagnostic {
  Severity: string;
  Code: string;
  Message: string;
  Start: number;
  Length: number;
}
interface KCode {
  GetDiagnostics(): KList<KDiagnostic>;
  ResultType: { Columns?: KList<{ Name: string; Type: { Name: string } }> } | null;
}
interface KSymbol {
  readonly _symbol: unique symbol;
}
interface KGlobals {
  WithDatabase(db: KSymbol): KGlobals;
}
interface KustoLanguage {
  GlobalState: { Default: KGlobals };
  KustoCode: { ParseAndAnalyze(text: string, globals: KGlobals): KCode };
  Symbols: {
    TableSymbol: { $ctor7: new (name: string, schema: string, description: string | null) => KSymbol };
    DatabaseSymbol: { $ctor2: new (name: string, alternateName: string | null, members: KSymbol[]) => KSymbol };
  };
}

function loadKusto(): KustoLanguage {
  require('@kusto/language-service-next/bridge.min.js');
  require('@kusto/language-service-next/Kusto.Language.Bridge.min.js');
  return (globalThis as unknown as { Kusto: { Language: KustoLanguage } }).Kusto.Language;
}

// ---------------------------------------------------------------------------------------------------------------
// The Application Insights tables as a query against the App Insights resource sees them (the classic names, which
// workbooks, dashboards and alert rules scoped to the component use), with the column types Azure documents.

const COMMON =
  'timestamp:datetime, itemType:string, itemId:string, customDimensions:dynamic, operation_Name:string, operation_Id:string, ' +
  'operation_ParentId:string, operation_SyntheticSource:string, session_Id:string, user_Id:string, user_AuthenticatedId:string, ' +
  'user_AccountId:string, application_Version:string, client_Type:string, client_Model:string, client_OS:string, client_IP:string, ' +
  'client_City:string, client_StateOrProvince:string, client_CountryOrRegion:string, client_Browser:string, cloud_RoleName:string, ' +
  'cloud_RoleInstance:string, appId:string, appName:string, iKey:string, sdkVersion:string';
/** Every table but customMetrics and performanceCounters. */
const SAMPLED = 'itemCount:int, customMeasurements:dynamic';

const APP_INSIGHTS_TABLES: Record<string, string> = {
  requests: `${SAMPLED}, id:string, source:string, name:string, url:string, success:string, resultCode:string, duration:real, performanceBucket:string`,
  dependencies: `${SAMPLED}, id:string, target:string, type:string, name:string, data:string, success:string, resultCode:string, duration:real, performanceBucket:string`,
  customEvents: `${SAMPLED}, name:string`,
  customMetrics: 'name:string, value:real, valueCount:int, valueSum:real, valueMin:real, valueMax:real',
  traces: `${SAMPLED}, message:string, severityLevel:int`,
  exceptions:
    `${SAMPLED}, problemId:string, handledAt:string, type:string, message:string, assembly:string, method:string, outerType:string, ` +
    'outerMessage:string, outerAssembly:string, outerMethod:string, innermostType:string, innermostMessage:string, ' +
    'innermostAssembly:string, innermostMethod:string, severityLevel:int, details:dynamic',
  pageViews: `${SAMPLED}, id:string, name:string, url:string, duration:real, performanceBucket:string`,
  availabilityResults: `${SAMPLED}, id:string, name:string, location:string, success:string, message:string, size:real, duration:real, performanceBucket:string`,
  browserTimings:
    `${SAMPLED}, name:string, url:string, networkDuration:real, processingDuration:real, receiveDuration:real, sendDuration:real, ` +
    'totalDuration:real, performanceBucket:string',
  performanceCounters: 'name:string, category:string, counter:string, instance:string, value:real',
};

let kusto: KustoLanguage;
let globals: KGlobals;

before(() => {
  kusto = loadKusto();
  const tables = Object.entries(APP_INSIGHTS_TABLES).map(([name, columns]) => new kusto.Symbols.TableSymbol.$ctor7(name, `(${COMMON}, ${columns})`, null));
  globals = kusto.GlobalState.Default.WithDatabase(new kusto.Symbols.DatabaseSymbol.$ctor2('appinsights', null, tables));
});

interface Compiled {
  errors: KDiagnostic[];
  /** Result columns by name → type name ("real", "long", ...); empty when the query has no tabular result. */
  columns: Map<string, string>;
}

function compile(query: string): Compiled {
  const code = kusto.KustoCode.ParseAndAnalyze(query, globals);
  const diagnostics = code.GetDiagnostics();
  const errors: KDiagnostic[] = [];
  for (let i = 0; i < diagnostics.Count; i++) {
    const d = diagnostics.getItem(i);
    if (d.Severity === 'Error') errors.push(d);
  }
  const columns = new Map<string, string>();
  const list = code.ResultType?.Columns;
  for (let i = 0; list && i < list.Count; i++) columns.set(list.getItem(i).Name, list.getItem(i).Type.Name);
  return { errors, columns };
}

// ---------------------------------------------------------------------------------------------------------------
// The queries infra deploys.

interface DeployedQuery {
  /** Where it is written: "infra/app/alerts.bicep:61 (failed-jobs)". */
  where: string;
  /** File line of the query's first line, when the file holds it across lines (Bicep ''' strings). */
  firstLine?: number;
  /** As sent to Azure, workbook parameters filled in as the dashboard fills them. */
  text: string;
  /** Workbook item name (the dashboard refers to it as kql.<name>). */
  item?: string;
  /** Numeric column an alert rule measures (metricMeasureColumn). */
  measureColumn?: string;
}

interface WorkbookParameter {
  name: string;
  type: number;
}
interface Workbook {
  version?: string;
  items?: { type: number; name: string; content: { query?: string; parameters?: WorkbookParameter[] } }[];
}

/** Fills `{Param}` / `{Param:format}` as a workbook would; unknown placeholders are reported, not guessed. */
function fillParameters(query: string, params: Map<string, number>, where: string, problems: string[]): string {
  return query.replace(/\{(\w+)(?::(\w+))?\}/g, (whole, name: string, format: string | undefined) => {
    const type = params.get(name);
    if (type === 4 && format === 'grain') return '1h'; // a time range's bin size (dashboard.bicep uses 1h)
    if (type === 4 && (format === 'start' || format === 'end')) return 'datetime(2026-01-01)';
    if (type === 1 && format === undefined) return '100'; // a text parameter (the monthly budget)
    problems.push(`${where}: workbook placeholder ${whole} has no known expansion`);
    return whole;
  });
}

function workbookQueries(path: string, problems: string[]): DeployedQuery[] {
  const wb = JSON.parse(read(path)) as Workbook;
  if (!String(wb.version ?? '').startsWith('Notebook/') || !wb.items) return [];
  const params = new Map<string, number>();
  for (const item of wb.items) for (const p of item.content.parameters ?? []) params.set(p.name, p.type);
  return wb.items
    .filter((item) => item.type === 3 && item.content.query)
    .map((item) => {
      const where = `${path} item "${item.name}"`;
      return { where, item: item.name, text: fillParameters(item.content.query!, params, where, problems) };
    });
}

const lineAt = (text: string, index: number) => text.slice(0, index).split('\n').length;

/**
 * `query:` values of a Bicep file: literals are compiled; `<loop variable>.query` (a resource loop over a list of
 * literals) is accepted; anything else cannot be checked here and is reported.
 */
function bicepQueries(path: string, problems: string[]): DeployedQuery[] {
  const text = read(path);
  const out: DeployedQuery[] = [];
  for (const m of text.matchAll(/\bquery\s*:\s*/g)) {
    const start = m.index! + m[0].length;
    const line = lineAt(text, m.index!);
    // The rule's own key and measured column, written before its query in the same object.
    const before = text.slice(text.lastIndexOf('{', m.index!), m.index!);
    const key = /\bkey\s*:\s*'([^']+)'/.exec(before)?.[1];
    const measureColumn = /\bcolumn\s*:\s*'([^']+)'/.exec(before)?.[1];
    const where = `${path}:${line}${key ? ` (${key})` : ''}`;
    let query: string | undefined;
    let firstLine = line;
    if (text.startsWith("'''", start)) {
      const end = text.indexOf("'''", start + 3);
      query = text.slice(start + 3, end);
      if (query.startsWith('\n')) {
        query = query.slice(1); // Bicep drops the newline right after the opening '''
        firstLine = line + 1;
      }
    } else if (text[start] === "'") {
      query = /^'((?:[^'\\]|\\.)*)'/.exec(text.slice(start))?.[1]?.replace(/\\'/g, "'");
    } else if (/^\w+\.query\b/.test(text.slice(start))) {
      continue; // the loop over the literals above
    }
    if (query === undefined) {
      problems.push(`${where}: a query given as an expression cannot be compiled here`);
      continue;
    }
    out.push({ where, firstLine, text: query, ...(measureColumn ? { measureColumn } : {}) });
  }
  return out;
}

function deployedQueries(): { queries: DeployedQuery[]; problems: string[] } {
  const problems: string[] = [];
  const queries = [
    ...filesUnder('infra', '.json').flatMap((path) => workbookQueries(path, problems)),
    ...filesUnder('infra', '.bicep').flatMap((path) => bicepQueries(path, problems)),
  ];
  return { queries, problems };
}

/** "where, line N: KS142 The name 'nam' ...", the query line and a caret under the offending text. */
function describe(q: DeployedQuery, d: KDiagnostic): string {
  const queryLine = lineAt(q.text, d.Start);
  const lineStart = q.text.lastIndexOf('\n', d.Start - 1) + 1;
  const source = q.text.slice(lineStart).split('\n')[0]!;
  const at = q.firstLine !== undefined ? `${q.where.replace(/:\d+/, `:${q.firstLine + queryLine - 1}`)}` : `${q.where}, query line ${queryLine}`;
  return `${at}: ${d.Code} ${d.Message}\n    ${source}\n    ${' '.repeat(d.Start - lineStart)}${'^'.repeat(Math.max(1, d.Length))}`;
}

// ---------------------------------------------------------------------------------------------------------------

test('the checker rejects a misspelt column, an unknown table, an unknown function and a type error', () => {
  const broken = [
    'customMetrics | where nam == "sluice.failovers"',
    'customMetric | take 1',
    'dependencies | summarize percentil(duration, 95)',
    'dependencies | where duration > "slow"',
  ];
  for (const q of broken) assert.ok(compile(q).errors.length > 0, `no error for: ${q}`);
  assert.deepEqual(compile('customMetrics | where name == "sluice.failovers" | summarize n = sum(valueSum)').errors, []);
});

test('every KQL query infra deploys compiles against the Application Insights schema', () => {
  const { queries, problems } = deployedQueries();
  assert.ok(queries.filter((q) => q.item).length >= 10, 'the workbook queries are found');
  assert.ok(queries.filter((q) => q.measureColumn).length >= 7, 'the alert rule queries are found');
  const errors = queries.flatMap((q) => compile(q.text).errors.map((d) => describe(q, d)));
  assert.deepEqual([...problems, ...errors], [], `\n${[...problems, ...errors].join('\n\n')}\n`);
});

test('alert rules measure a numeric column of their query; dashboard charts plot columns of theirs', () => {
  const { queries } = deployedQueries();
  const numeric = new Set(['int', 'long', 'real', 'decimal']);
  const missing: string[] = [];
  for (const q of queries.filter((x) => x.measureColumn)) {
    const type = compile(q.text).columns.get(q.measureColumn!);
    if (!type || !numeric.has(type)) missing.push(`${q.where}: metricMeasureColumn ${q.measureColumn} is ${type ?? 'not in the result'}`);
  }

  const byItem = new Map(queries.filter((q) => q.item).map((q) => [q.item!, q]));
  const dashboard = read('infra/app/dashboard.bicep');
  const tiles = logTileCalls(dashboard);
  assert.ok(tiles.length >= 8, 'the dashboard tiles are found');
  for (const call of tiles) {
    const item = /\bkql\.(\w+)/.exec(call)?.[1];
    const q = item ? byItem.get(item) : undefined;
    if (!q) continue; // test/infra/telemetry.test.ts checks that every tile is a workbook query
    const columns = compile(q.text).columns;
    for (const [, column] of call.matchAll(/\b(?:axis|timeChart)\('(\w+)'/g)) {
      if (!columns.has(column!)) missing.push(`infra/app/dashboard.bicep tile kql.${item}: charts ${column}, not a column of its query (${[...columns.keys()].join(', ')})`);
    }
    const split = /\btimeChart\('\w+',\s*'(\w+)'/.exec(call)?.[1];
    if (split && !columns.has(split)) missing.push(`infra/app/dashboard.bicep tile kql.${item}: splits by ${split}, not a column of its query`);
    // timeChart's x axis is always `timestamp`.
    if (/\btimeChart\(/.test(call) && !columns.has('timestamp')) missing.push(`infra/app/dashboard.bicep tile kql.${item}: a time chart without a timestamp column`);
  }
  assert.deepEqual(missing, []);
});

/** The text of every `logTile(...)` call (not its definition), strings skipped when matching parentheses. */
function logTileCalls(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?<!func\s)\blogTile\(/g)) {
    let depth = 0;
    let inString = false;
    for (let i = m.index! + 'logTile'.length; i < text.length; i++) {
      const c = text[i];
      if (inString) {
        if (c === '\\') i++;
        else if (c === "'") inString = false;
      } else if (c === "'") inString = true;
      else if (c === '(') depth++;
      else if (c === ')' && --depth === 0) {
        out.push(text.slice(m.index!, i + 1));
        break;
      }
    }
  }
  return out;
}
