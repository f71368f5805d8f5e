// Finds the function files the way the Functions Node.js worker does: package.json `main`, a path or glob
// (e.g. "dist/src/functions/*.js"), relative to the project root. Supports `*`, `?` and `**` segments.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

function segmentRegex(segment: string): RegExp {
  const body = segment.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
  return new RegExp(`^${body}$`);
}

function walk(dir: string, segments: string[], out: string[]): void {
  if (segments.length === 0) {
    out.push(dir);
    return;
  }
  const [head, ...rest] = segments as [string, ...string[]];
  if (head === '**') {
    walk(dir, rest, out); // zero directories
    for (const entry of safeReaddir(dir)) if (entry.isDirectory()) walk(join(dir, entry.name), segments, out);
    return;
  }
  if (!/[*?]/.test(head)) {
    const next = join(dir, head);
    if (rest.length === 0 ? isFile(next) : isDirectory(next)) walk(next, rest, out);
    return;
  }
  const regex = segmentRegex(head);
  for (const entry of safeReaddir(dir)) {
    if (!regex.test(entry.name)) continue;
    if (rest.length === 0 ? entry.isFile() : entry.isDirectory()) walk(join(dir, entry.name), rest, out);
  }
}

function safeReaddir(dir: string) {
  try {
    return readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Absolute paths matching `pattern` under `rootDir`, sorted (load order is deterministic). */
export function expandGlob(rootDir: string, pattern: string): string[] {
  const out: string[] = [];
  walk(resolve(rootDir), pattern.replace(/^\.\//, '').split('/').filter((s) => s !== ''), out);
  return [...new Set(out)].sort();
}

/** The files named by `<rootDir>/package.json` `main`; throws a helpful error when nothing matches. */
export function functionFilesFromPackageJson(rootDir: string): string[] {
  const pkg = JSON.parse(readFileSync(join(rootDir, 'package.json'), 'utf8')) as { main?: unknown };
  if (typeof pkg.main !== 'string' || pkg.main === '') throw new Error(`${join(rootDir, 'package.json')} has no "main" naming the function files`);
  const files = expandGlob(rootDir, pkg.main);
  if (files.length === 0) throw new Error(`no files match package.json main "${pkg.main}" under ${rootDir} (run \`npm run build\` first?)`);
  return files;
}
