/**
 * Run-time checks of frames against the protocol, the building blocks ws-codegen's `validate.ts` is
 * written with: each {@link Check} looks at a value and gives the first place it does not fit, as a
 * path from the frame (`data.points[2].x`) and what was expected there. No schema engine is shipped:
 * the generated file composes these few functions, one per JSON Schema keyword it uses.
 */

/** Where a value does not fit its type, and what was expected there. */
export interface Mismatch {
  /** From the frame: `data`, `data.user`, `data.points[2].x`. */
  path: string;
  /** What the value should have been, in words: `a string`, `an integer from 0 to 4294967295`. */
  expected: string;
}

/** Where a value is: a name (`data`), or a step from where its parent is. Written out only for a
 * mismatch, so checking a value that fits builds no string. */
export type Path = string | { readonly up: Path; readonly key: string | number };

/** Checks a value found at `path`; `undefined` when it fits. */
export type Check = (value: unknown, path: Path) => Mismatch | undefined;

/** `path` written out: `data.points[2].x`. */
export function pathText(path: Path): string {
  if (typeof path === "string") return path;
  const up = pathText(path.up);
  return typeof path.key === "number" ? `${up}[${path.key}]` : `${up}.${path.key}`;
}

/** The checks of a protocol, by message type (what the generated `validate.ts` exports). */
export interface Validators {
  /** The `data` of each server → client message. */
  server: Readonly<Record<string, Check>>;
  /** The reply's `data` to each client request. */
  serverReplies: Readonly<Record<string, Check>>;
  /** Each item's `data` of the stream that answers a client request (absent: the protocol has none). */
  serverItems?: Readonly<Record<string, Check>>;
  /** The `data` of each client → server message. */
  client: Readonly<Record<string, Check>>;
  /** The reply's `data` to each server request. */
  clientReplies: Readonly<Record<string, Check>>;
}

const miss = (path: Path, expected: string): Mismatch => ({ path: pathText(path), expected });

/** Any value. */
export const any: Check = () => undefined;

/** No value (a schema of `false`). */
export const never: Check = (_, path) => miss(path, "nothing");

export const nul: Check = (v, p) => (v === null ? undefined : miss(p, "null"));
export const bool: Check = (v, p) => (typeof v === "boolean" ? undefined : miss(p, "a boolean"));

function range(min: number | undefined, max: number | undefined): string {
  if (min !== undefined && max !== undefined) return ` from ${min} to ${max}`;
  if (min !== undefined) return ` of at least ${min}`;
  if (max !== undefined) return ` of at most ${max}`;
  return "";
}

/** A number (`integer`: a whole one) within the bounds given. */
export function num(integer: boolean, min?: number, max?: number): Check {
  const expected = `${integer ? "an integer" : "a number"}${range(min, max)}`;
  return (v, p) =>
    typeof v === "number" &&
    Number.isFinite(v) &&
    (!integer || Number.isInteger(v)) &&
    (min === undefined || v >= min) &&
    (max === undefined || v <= max)
      ? undefined
      : miss(p, expected);
}

/** A string whose length (in UTF-16 code units, as JSON Schema counts code points: close enough for
 * bounds) is within the bounds given. */
export function str(min?: number, max?: number): Check {
  const expected = `a string${min === undefined && max === undefined ? "" : ` of length${range(min, max)}`}`;
  return (v, p) =>
    typeof v === "string" && (min === undefined || v.length >= min) && (max === undefined || v.length <= max)
      ? undefined
      : miss(p, expected);
}

/** One of these JSON values exactly (`enum`, `const`). */
export function literal(values: readonly unknown[]): Check {
  const texts = values.map((value) => JSON.stringify(value));
  const expected = texts.length === 1 ? String(texts[0]) : `one of ${texts.join(", ")}`;
  return (v, p) => (texts.includes(JSON.stringify(v)) ? undefined : miss(p, expected));
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** An object with these properties (`required` ones present), and others checked by `rest` (`false`: none
 * allowed; omitted: any). */
export function object(properties: Readonly<Record<string, Check>>, required: readonly string[], rest?: Check | false): Check {
  return (v, p) => {
    if (!isObject(v)) return miss(p, "an object");
    for (const key of required) if (!(key in v)) return miss({ up: p, key }, "a value (required)");
    for (const key in v) {
      const check = properties[key];
      const found = check
        ? check(v[key], { up: p, key })
        : rest === false
          ? miss({ up: p, key }, "no such property")
          : rest?.(v[key], { up: p, key });
      if (found) return found;
    }
    return undefined;
  };
}

/** An array of `items`, after the `prefix` items in order (tuples), with a length within the bounds. */
export function array(items: Check | undefined, prefix: readonly Check[] = [], min?: number, max?: number): Check {
  const expected = `an array${min === undefined && max === undefined ? "" : ` of length${range(min, max)}`}`;
  return (v, p) => {
    if (!Array.isArray(v) || (min !== undefined && v.length < min) || (max !== undefined && v.length > max)) {
      return miss(p, expected);
    }
    for (let i = 0; i < v.length; i++) {
      const check = i < prefix.length ? prefix[i] : items;
      const found = check?.(v[i], { up: p, key: i });
      if (found) return found;
    }
    return undefined;
  };
}

/** Fits every check (`allOf`). */
export function all(checks: readonly Check[]): Check {
  return (v, p) => {
    for (const check of checks) {
      const found = check(v, p);
      if (found) return found;
    }
    return undefined;
  };
}

/** Fits at least one check (`anyOf`), or exactly one (`oneOf`). The mismatch reported is the one that
 * went deepest into the value: for a tagged enum, the variant whose tag fits. */
export function some(checks: readonly Check[], exactlyOne: boolean): Check {
  return (v, p) => {
    let fits = 0;
    let best: Mismatch | undefined;
    for (const check of checks) {
      const found = check(v, p);
      if (!found) fits += 1;
      else if (!best || found.path.length > best.path.length) best = found;
    }
    if (fits === 1 || (fits > 1 && !exactlyOne)) return undefined;
    if (fits > 1) return miss(p, "exactly one of its alternatives (several fit)");
    return best && best.path !== pathText(p) ? best : miss(p, best ? `one of: ${best.expected}, ...` : "a value");
  };
}

/** The definition named `name` in `defs`, looked up when checked, so definitions may refer to each other. */
export function ref(defs: Readonly<Record<string, Check>>, name: string): Check {
  return (v, p) => (defs[name] as Check)(v, p);
}
