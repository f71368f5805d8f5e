// HTTP route templates as the Functions host (ASP.NET Core routing) reads them: "v1/jobs/{id}", "{id:guid}",
// "{name:length(3,20):alpha}", optional "{page?}", defaults "{page=1}", catch-all "{*rest}" and mixed segments
// like "{name}.{ext}". Pure: no I/O, so it is unit-tested on its own.

type Constraint = (value: string) => boolean;

interface ParamPart {
  kind: 'param';
  name: string;
  optional: boolean;
  catchAll: boolean;
  defaultValue: string | undefined;
  constraints: Constraint[];
}
type SegmentPart = { kind: 'literal'; text: string } | ParamPart;

interface Segment {
  parts: SegmentPart[];
  /** Set when the segment is more than one lone parameter: matches the whole decoded segment. */
  pattern: RegExp | undefined;
}

export interface CompiledRoute {
  template: string;
  segments: Segment[];
  /** Lower sorts first: literal segments beat constrained parameters beat parameters beat optional/catch-all. */
  precedence: number[];
}

const INT32 = { min: -2_147_483_648, max: 2_147_483_647 };
const isNumber = (v: string) => v.trim() !== '' && Number.isFinite(Number(v));
const isInteger = (v: string) => /^-?\d+$/.test(v);

function numberArgs(name: string, args: string | undefined, count: number[]): number[] {
  const values = (args ?? '').split(',').map((a) => Number(a.trim()));
  if (!count.includes(values.length) || values.some((n) => !Number.isFinite(n))) {
    throw new Error(`route constraint ${name}(${args ?? ''}): expected ${count.join(' or ')} numeric argument(s)`);
  }
  return values;
}

function buildConstraint(spec: string): Constraint {
  const match = /^([a-zA-Z]+)(?:\((.*)\))?$/s.exec(spec);
  if (!match) throw new Error(`route constraint "${spec}" is not valid`);
  const name = match[1]!.toLowerCase();
  const args = match[2];
  switch (name) {
    case 'int':
      return (v) => isInteger(v) && Number(v) >= INT32.min && Number(v) <= INT32.max;
    case 'long':
      return (v) => isInteger(v) && v.replace('-', '').length <= 19;
    case 'bool':
      return (v) => /^(true|false)$/i.test(v);
    case 'guid':
      return isGuid;
    case 'alpha':
      return (v) => /^[a-z]+$/i.test(v);
    case 'datetime':
      return (v) => !Number.isNaN(Date.parse(v));
    case 'decimal':
    case 'double':
    case 'float':
      return isNumber;
    case 'min': {
      const [min] = numberArgs(name, args, [1]);
      return (v) => isInteger(v) && Number(v) >= min!;
    }
    case 'max': {
      const [max] = numberArgs(name, args, [1]);
      return (v) => isInteger(v) && Number(v) <= max!;
    }
    case 'range': {
      const [min, max] = numberArgs(name, args, [2]);
      return (v) => isInteger(v) && Number(v) >= min! && Number(v) <= max!;
    }
    case 'length': {
      const [a, b] = numberArgs(name, args, [1, 2]);
      return b === undefined ? (v) => v.length === a : (v) => v.length >= a! && v.length <= b;
    }
    case 'minlength': {
      const [min] = numberArgs(name, args, [1]);
      return (v) => v.length >= min!;
    }
    case 'maxlength': {
      const [max] = numberArgs(name, args, [1]);
      return (v) => v.length <= max!;
    }
    case 'regex': {
      // ASP.NET Core: case-insensitive and not implicitly anchored.
      const regex = new RegExp(args ?? '', 'i');
      return (v) => regex.test(v);
    }
    default:
      throw new Error(`route constraint "${name}" is not supported`);
  }
}

/** Guid.TryParse's common formats: hyphenated or 32 hex digits, optionally in braces or parentheses. */
function isGuid(value: string): boolean {
  const bare = value.startsWith('{') && value.endsWith('}') ? value.slice(1, -1) : value.startsWith('(') && value.endsWith(')') ? value.slice(1, -1) : value;
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(bare) || /^[0-9a-f]{32}$/i.test(bare);
}

/** Splits "name:int:regex(a:b)" on colons that are not inside parentheses. */
function splitConstraints(token: string): string[] {
  const pieces: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of token) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ':' && depth === 0) {
      pieces.push(current);
      current = '';
    } else current += ch;
  }
  pieces.push(current);
  return pieces;
}

function parseParam(token: string, template: string): ParamPart {
  const [head = '', ...constraintSpecs] = splitConstraints(token);
  let name = head;
  let defaultValue: string | undefined;
  const catchAll = name.startsWith('*');
  name = name.replace(/^\*{1,2}/, '');
  const eq = name.indexOf('=');
  if (eq >= 0) {
    defaultValue = name.slice(eq + 1);
    name = name.slice(0, eq);
  }
  // "?" may sit on the name ({id?}) or after the constraints ({id:int?}).
  let optional = name.endsWith('?');
  name = name.replace(/\?$/, '');
  const last = constraintSpecs.length - 1;
  if (last >= 0 && constraintSpecs[last]!.endsWith('?')) {
    optional = true;
    constraintSpecs[last] = constraintSpecs[last]!.slice(0, -1);
  }
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`route "${template}": bad parameter name in {${token}}`);
  return { kind: 'param', name, optional: optional || catchAll, catchAll, defaultValue, constraints: constraintSpecs.map(buildConstraint) };
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function parseSegment(text: string, template: string): Segment {
  const parts: SegmentPart[] = [];
  const tokenRegex = /\{([^{}]*(?:\([^)]*\)[^{}]*)*)\}/g;
  let last = 0;
  for (let m = tokenRegex.exec(text); m; m = tokenRegex.exec(text)) {
    if (m.index > last) parts.push({ kind: 'literal', text: text.slice(last, m.index) });
    parts.push(parseParam(m[1]!, template));
    last = m.index + m[0].length;
  }
  if (last < text.length) parts.push({ kind: 'literal', text: text.slice(last) });
  const single = parts.length === 1 && parts[0]!.kind === 'param';
  const pattern = single
    ? undefined
    : new RegExp(`^${parts.map((p) => (p.kind === 'literal' ? escapeRegex(p.text) : '(.+?)')).join('')}$`, 'i');
  return { parts, pattern };
}

function segmentPrecedence(segment: Segment): number {
  const params = segment.parts.filter((p): p is ParamPart => p.kind === 'param');
  if (params.length === 0) return 1;
  if (segment.pattern) return 2;
  const param = params[0]!;
  if (param.catchAll) return 6;
  if (param.optional || param.defaultValue !== undefined) return 5;
  return param.constraints.length > 0 ? 3 : 4;
}

export function compileRoute(template: string): CompiledRoute {
  const texts = template.replace(/^[~/]+|\/+$/g, '').split('/').filter((s, i, all) => s !== '' || all.length === 1);
  const segments = texts.filter((t) => t !== '').map((t) => parseSegment(t, template));
  segments.forEach((segment, index) => {
    const catchAll = segment.parts.some((p) => p.kind === 'param' && p.catchAll);
    if (catchAll && (index !== segments.length - 1 || segment.pattern)) {
      throw new Error(`route "${template}": a catch-all parameter must be the whole last segment`);
    }
  });
  return { template, segments, precedence: segments.map(segmentPrecedence) };
}

function decodeSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

function accept(param: ParamPart, value: string, params: Record<string, string>): boolean {
  if (!param.constraints.every((c) => c(value))) return false;
  params[param.name] = value;
  return true;
}

/** Matches a URL path ("/api/v1/jobs/42", still percent-encoded) against a route; returns its params or undefined. */
export function matchRoute(route: CompiledRoute, path: string): Record<string, string> | undefined {
  const pathSegments = path.split('/').filter((s) => s !== '');
  const params: Record<string, string> = {};
  for (let i = 0; i < route.segments.length; i++) {
    const segment = route.segments[i]!;
    const first = segment.parts[0]!;
    if (first.kind === 'param' && first.catchAll) {
      const decoded = pathSegments.slice(i).map(decodeSegment);
      if (decoded.some((d) => d === undefined)) return undefined;
      if (decoded.length === 0) {
        if (first.defaultValue !== undefined) params[first.name] = first.defaultValue;
        return params;
      }
      return accept(first, decoded.join('/'), params) ? params : undefined;
    }
    const raw = pathSegments[i];
    if (raw === undefined) {
      // Missing trailing segments are fine only for optional/defaulted lone parameters.
      if (segment.pattern || first.kind !== 'param' || (!first.optional && first.defaultValue === undefined)) return undefined;
      if (first.defaultValue !== undefined) params[first.name] = first.defaultValue;
      continue;
    }
    const value = decodeSegment(raw);
    if (value === undefined) return undefined;
    if (!segment.pattern) {
      if (first.kind === 'literal') {
        if (first.text.toLowerCase() !== value.toLowerCase()) return undefined;
      } else if (!accept(first, value, params)) return undefined;
      continue;
    }
    const match = segment.pattern.exec(value);
    if (!match) return undefined;
    const paramParts = segment.parts.filter((p): p is ParamPart => p.kind === 'param');
    if (!paramParts.every((p, k) => accept(p, match[k + 1]!, params))) return undefined;
  }
  return pathSegments.length <= route.segments.length ? params : undefined;
}

export type RouteMatch<T> =
  | { kind: 'matched'; value: T; params: Record<string, string> }
  | { kind: 'methodNotAllowed'; allowed: string[] }
  | { kind: 'notFound' };

/** Routes with their methods; `match` picks the most specific route, then checks the method (405 vs 404). */
export class RouteTable<T> {
  private readonly entries: { route: CompiledRoute; methods: string[] | undefined; value: T; order: number }[] = [];

  /** @param prefix host.json routePrefix ('' = none). */
  constructor(private readonly prefix: string) {}

  /** @param methods upper- or lower-case; undefined/empty = every method. */
  add(template: string, methods: readonly string[] | undefined, value: T): void {
    const full = [this.prefix, template.replace(/^[~/]+/, '')].filter((s) => s !== '').join('/');
    const route = compileRoute(full);
    this.entries.push({ route, methods: methods?.length ? methods.map((m) => m.toUpperCase()) : undefined, value, order: this.entries.length });
    this.entries.sort((a, b) => comparePrecedence(a.route.precedence, b.route.precedence) || a.order - b.order);
  }

  match(method: string, path: string): RouteMatch<T> {
    const allowed = new Set<string>();
    for (const entry of this.entries) {
      const params = matchRoute(entry.route, path);
      if (!params) continue;
      if (!entry.methods || entry.methods.includes(method.toUpperCase())) return { kind: 'matched', value: entry.value, params };
      entry.methods.forEach((m) => allowed.add(m));
    }
    return allowed.size > 0 ? { kind: 'methodNotAllowed', allowed: [...allowed] } : { kind: 'notFound' };
  }
}

function comparePrecedence(a: number[], b: number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length; // ASP.NET Core precedence is a decimal per segment: 1.11 sorts before 1.115
}
