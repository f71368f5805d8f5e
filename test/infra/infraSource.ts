/**
 * Reading helpers for the infra drift tests: the Bicep files as text (there is no Bicep compiler here), and the app's
 * TypeScript sources through the TypeScript parser, so string literals are found exactly and comments are ignored.
 */
import { readFileSync, readdirSync, existsSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import ts from 'typescript';

/** Repository root (tests run compiled from dist/test/infra). */
export const ROOT = resolve(__dirname, '..', '..', '..');

export function read(rel: string): string {
  return readFileSync(join(ROOT, rel), 'utf8');
}

export function exists(rel: string): boolean {
  return existsSync(join(ROOT, rel));
}

/** Files under `dir` (repo-relative) whose names end with `suffix`, recursively, as repo-relative paths. */
export function filesUnder(dir: string, suffix: string): string[] {
  const out: string[] = [];
  const walk = (abs: string): void => {
    for (const entry of readdirSync(abs)) {
      const p = join(abs, entry);
      if (statSync(p).isDirectory()) walk(p);
      else if (entry.endsWith(suffix)) out.push(relative(ROOT, p).split('\\').join('/'));
    }
  };
  if (exists(dir)) walk(join(ROOT, dir));
  return out.sort();
}

/** All Bicep sources of infra/, concatenated with their paths, for "is it anywhere" questions. */
export function allBicep(): { path: string; text: string }[] {
  return filesUnder('infra', '.bicep').map((path) => ({ path, text: read(path) }));
}

// ---------------------------------------------------------------------------------------------------------------
// Bicep text

/** If a string ('…' or '''…''') or a // comment starts at `i`, the index of its last character; else -1. */
function skipNonCode(text: string, i: number): number {
  if (text.startsWith("'''", i)) return text.indexOf("'''", i + 3) + 2;
  if (text.startsWith('//', i)) {
    const end = text.indexOf('\n', i);
    return end < 0 ? text.length : end - 1;
  }
  if (text[i] === "'") {
    let j = i + 1;
    while (j < text.length && text[j] !== "'") j += text[j] === '\\' ? 2 : 1;
    return j;
  }
  return -1;
}

/** Index just past the brace/bracket that closes the one at `open`, skipping strings and comments. */
function matchClose(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const skip = skipNonCode(text, i);
    if (skip >= 0) {
      i = skip;
      continue;
    }
    const c = text[i];
    if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  throw new Error('unbalanced braces');
}

/** The `{…}` (or `[…]`) body that follows the first match of `start`, without the outer braces. */
export function blockAfter(text: string, start: RegExp): string {
  const m = start.exec(text);
  if (!m) throw new Error(`no ${start} in Bicep source`);
  const open = text.slice(m.index + m[0].length).search(/[{[]/) + m.index + m[0].length;
  return text.slice(open + 1, matchClose(text, open) - 1);
}

/** Every `resource <sym> '<type>@…' … {…}` block of one type: symbol, header (loop/condition) and body. */
export function resourceBlocks(text: string, type: string): { symbol: string; header: string; body: string }[] {
  const re = new RegExp(`resource\\s+(\\w+)\\s+'${type.replace(/[./]/g, '\\$&')}@[^']+'([^{]*)`, 'g');
  const out: { symbol: string; header: string; body: string }[] = [];
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const open = m.index + m[0].length;
    out.push({ symbol: m[1]!, header: m[2]!, body: text.slice(open + 1, matchClose(text, open) - 1) });
  }
  return out;
}

/** Resource type (without api version) of each `resource <sym> '<type>@…'` symbol declared in a file. */
export function resourceTypes(text: string): Map<string, string> {
  return new Map([...text.matchAll(/^resource\s+(\w+)\s+'([^@']+)@/gm)].map((m) => [m[1]!, m[2]!] as const));
}

/** Keys of an object-literal body at its own top level (nested objects, strings and comments skipped). */
export function topLevelKeys(body: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = 0; i < body.length; i++) {
    if (depth === 0 && (i === 0 || body[i - 1] === '\n')) {
      const m = /^[ \t]*([A-Za-z_][A-Za-z0-9_]*|'[^'\n]+')[ \t]*:/.exec(body.slice(i));
      if (m) keys.push(m[1]!.replace(/'/g, ''));
    }
    const skip = skipNonCode(body, i);
    if (skip >= 0) {
      i = skip;
      continue;
    }
    const c = body[i];
    if (c === '{' || c === '[' || c === '(') depth++;
    else if (c === '}' || c === ']' || c === ')') depth--;
  }
  return keys;
}

/** `var name = '…'` string variables, with `${other}` interpolations of other string variables resolved. */
export function stringVars(text: string): Map<string, string> {
  const raw = new Map<string, string>();
  for (const m of text.matchAll(/^var\s+(\w+)\s*=\s*'([^'\n]*)'\s*$/gm)) raw.set(m[1]!, m[2]!);
  const resolved = new Map<string, string>();
  const resolve = (name: string, seen: Set<string> = new Set()): string | undefined => {
    if (resolved.has(name)) return resolved.get(name);
    const v = raw.get(name);
    if (v === undefined || seen.has(name)) return undefined;
    seen.add(name);
    let ok = true;
    const out = v.replace(/\$\{(\w+)\}/g, (_, ref: string) => {
      const r = resolve(ref, seen);
      if (r === undefined) ok = false;
      return r ?? '';
    });
    if (!ok) return undefined;
    resolved.set(name, out);
    return out;
  };
  for (const name of raw.keys()) resolve(name);
  return resolved;
}

/** Value of a Bicep expression that is a string literal or a resolvable string variable; else undefined. */
export function stringValue(expr: string, vars: Map<string, string>): string | undefined {
  const e = expr.trim();
  const lit = /^'([^'$]*)'$/.exec(e);
  if (lit) return lit[1];
  return /^\w+$/.test(e) ? vars.get(e) : undefined;
}

/** `key: value` pairs at the top level of an object body (value = rest of the line). */
export function topLevelEntries(body: string): Map<string, string> {
  const out = new Map<string, string>();
  const keys = new Set(topLevelKeys(body));
  for (const line of body.split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.+?)\s*$/.exec(line);
    if (m && keys.has(m[1]!) && !out.has(m[1]!)) out.set(m[1]!, m[2]!);
  }
  return out;
}

/** Items of a one-line Bicep array `[a, 'b', c]` (or one item per line). */
export function arrayItems(body: string): string[] {
  return body
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** `param <name> …` declarations of a Bicep file, with whether each has a default. */
export function bicepParams(text: string): Map<string, { hasDefault: boolean }> {
  const out = new Map<string, { hasDefault: boolean }>();
  for (const m of text.matchAll(/^param\s+(\w+)\s+[^=\n]+?(=.*)?$/gm)) out.set(m[1]!, { hasDefault: m[2] !== undefined });
  return out;
}

/** Contents of every '''…''' multi-line string (the KQL queries in Bicep). */
export function multilineStrings(text: string): string[] {
  return [...text.matchAll(/'''([\s\S]*?)'''/g)].map((m) => m[1]!);
}

// ---------------------------------------------------------------------------------------------------------------
// TypeScript sources

export interface Literal {
  file: string;
  text: string;
  /** The whole source line the literal is on (for "what is this name for" heuristics). */
  line: string;
}

function parse(file: string): ts.SourceFile {
  return ts.createSourceFile(file, read(file), ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
}

/** String and template literal texts of the given files, with their lines. */
export function stringLiterals(files: string[]): Literal[] {
  const out: Literal[] = [];
  for (const file of files) {
    const sf = parse(file);
    const lines = sf.text.split('\n');
    const visit = (node: ts.Node): void => {
      if (ts.isStringLiteralLike(node) || ts.isTemplateHead(node) || ts.isTemplateMiddle(node) || ts.isTemplateTail(node)) {
        const { line } = sf.getLineAndCharacterOfPosition(node.getStart(sf));
        out.push({ file, text: node.text, line: lines[line] ?? '' });
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  return out;
}

/** Identifiers used as property names in `x.NAME` accesses (e.g. `env.SLUICE_JOBS_QUEUE`). */
export function accessedProperties(files: string[]): { file: string; name: string }[] {
  const out: { file: string; name: string }[] = [];
  for (const file of files) {
    const sf = parse(file);
    const visit = (node: ts.Node): void => {
      if (ts.isPropertyAccessExpression(node)) out.push({ file, name: node.name.text });
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  return out;
}

/** The app's own TypeScript (what is deployed): src/**, without declaration files. */
export function appSources(): string[] {
  return filesUnder('src', '.ts').filter((f) => !f.endsWith('.d.ts'));
}
