/**
 * The expressions of the kernel schema (schema.ts): required lengths, derived sizes and the
 * conditions of checks, written once as text and read two ways, by the TypeScript validator
 * (evaluate) and by scripts/gen-binding.js, which writes the same expressions as C++.
 *
 *   expr   := cond ('?' expr ':' expr)?
 *   cond   := and ('||' and)*          and := cmp ('&&' cmp)*
 *   cmp    := sum (('<' | '<=' | '>' | '>=' | '==' | '!=') sum)?
 *   sum    := prod (('+' | '-') prod)*  prod := unary (('*' | '/' | '%') unary)*
 *   unary  := '!' unary | '-' unary | atom
 *   atom   := number | name | name '(' expr (',' expr)* ')' | '(' expr ')'
 *
 * Values are numbers and booleans. Sizes are non-negative integers, so '/' is integer division
 * (floor). The functions are len(array), isNull(array), max, min, extent(rows, cols, ld) (the
 * elements a rows x cols matrix with leading dimension ld spans: 0 when empty, else
 * (rows - 1) * ld + cols) and, in messages only, dims(N, C, S) ("[N, C]" when S = 1, else "[N, C, S]").
 */

export type Expr =
  | { op: 'num'; value: number }
  | { op: 'name'; name: string }
  | { op: 'call'; fn: string; args: Expr[] }
  | { op: 'unary'; operator: '!' | '-'; arg: Expr }
  | { op: 'binary'; operator: string; left: Expr; right: Expr }
  | { op: 'cond'; test: Expr; then: Expr; else: Expr };

const FUNCTIONS = ['len', 'isNull', 'max', 'min', 'extent', 'dims'];

const TOKEN = /\s*(?:(\d+)|([A-Za-z_]\w*)|(<=|>=|==|!=|&&|\|\||[-+*/%<>!?:(),]))/y;

export function parse(text: string): Expr {
  const tokens: string[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < text.length) {
    const at = TOKEN.lastIndex, m = TOKEN.exec(text);
    if (!m) {
      if (/^\s*$/.test(text.slice(at))) break;
      throw new Error(`expression ${JSON.stringify(text)}: unexpected ${JSON.stringify(text.slice(at))}`);
    }
    tokens.push(m[1] ?? m[2] ?? m[3]);
  }
  let i = 0;
  const peek = () => tokens[i];
  const take = (t?: string) => {
    if (t !== undefined && tokens[i] !== t) throw new Error(`expression ${JSON.stringify(text)}: expected '${t}' at token ${i}`);
    return tokens[i++];
  };
  const binary = (next: () => Expr, ops: string[]) => (): Expr => {
    let left = next();
    while (ops.includes(peek())) {
      const operator = take();
      left = { op: 'binary', operator, left, right: next() };
    }
    return left;
  };
  const atom = (): Expr => {
    const t = take();
    if (t === undefined) throw new Error(`expression ${JSON.stringify(text)}: unexpected end`);
    if (t === '(') {
      const e = expr();
      take(')');
      return e;
    }
    if (/^\d+$/.test(t)) return { op: 'num', value: Number(t) };
    if (!/^[A-Za-z_]/.test(t)) throw new Error(`expression ${JSON.stringify(text)}: unexpected '${t}'`);
    if (peek() !== '(') return { op: 'name', name: t };
    if (!FUNCTIONS.includes(t)) throw new Error(`expression ${JSON.stringify(text)}: unknown function ${t}`);
    take('(');
    const args = [expr()];
    while (peek() === ',') {
      take();
      args.push(expr());
    }
    take(')');
    return { op: 'call', fn: t, args };
  };
  const unary = (): Expr => (peek() === '!' || peek() === '-' ? { op: 'unary', operator: take() as '!' | '-', arg: unary() } : atom());
  const prod = binary(unary, ['*', '/', '%']);
  const sum = binary(prod, ['+', '-']);
  const cmp = binary(sum, ['<', '<=', '>', '>=', '==', '!=']);
  const and = binary(cmp, ['&&']);
  const or = binary(and, ['||']);
  function expr(): Expr {
    const test = or();
    if (peek() !== '?') return test;
    take();
    const then = expr();
    take(':');
    return { op: 'cond', test, then, else: expr() };
  }
  const e = expr();
  if (i !== tokens.length) throw new Error(`expression ${JSON.stringify(text)}: unexpected '${tokens[i]}'`);
  return e;
}

/** The names an expression reads (arguments and derived values), len()'s and isNull()'s included. */
export function namesIn(e: Expr, into = new Set<string>()): Set<string> {
  if (e.op === 'name') into.add(e.name);
  else if (e.op === 'call') e.args.forEach((a) => namesIn(a, into));
  else if (e.op === 'unary') namesIn(e.arg, into);
  else if (e.op === 'binary') [e.left, e.right].forEach((a) => namesIn(a, into));
  else if (e.op === 'cond') [e.test, e.then, e.else].forEach((a) => namesIn(a, into));
  return into;
}

export type Value = number | boolean | string | ArrayLike<number> | null;

/** Evaluates e, reading names through get (which may validate an argument or derive a size on demand). */
export function evaluate(e: Expr, get: (name: string) => Value): number | boolean | string {
  switch (e.op) {
    case 'num':
      return e.value;
    case 'name':
      return get(e.name) as number | boolean;
    case 'unary': {
      const v = evaluate(e.arg, get);
      return e.operator === '!' ? !v : -(v as number);
    }
    case 'cond':
      return evaluate(e.test, get) ? evaluate(e.then, get) : evaluate(e.else, get);
    case 'binary': {
      const a = evaluate(e.left, get);
      if (e.operator === '&&') return Boolean(a) && Boolean(evaluate(e.right, get));
      if (e.operator === '||') return Boolean(a) || Boolean(evaluate(e.right, get));
      const x = a as number, y = evaluate(e.right, get) as number;
      switch (e.operator) {
        case '+': return x + y;
        case '-': return x - y;
        case '*': return x * y;
        case '/': return Math.floor(x / y);
        case '%': return x % y;
        case '<': return x < y;
        case '<=': return x <= y;
        case '>': return x > y;
        case '>=': return x >= y;
        case '==': return x === y;
        default: return x !== y;
      }
    }
    case 'call': {
      if (e.fn === 'len' || e.fn === 'isNull') {
        const arg = e.args[0];
        if (arg.op !== 'name') throw new Error(`${e.fn}() takes an argument's name`);
        const v = get(arg.name) as ArrayLike<number> | null;
        return e.fn === 'len' ? v!.length : v === null;
      }
      const v = e.args.map((a) => evaluate(a, get) as number);
      switch (e.fn) {
        case 'max': return Math.max(...v);
        case 'min': return Math.min(...v);
        case 'extent': return v[0] === 0 || v[1] === 0 ? 0 : (v[0] - 1) * v[2] + v[1];
        default: return `[${v[0]}, ${v[1]}${v[2] !== 1 ? `, ${v[2]}` : ''}]`; // dims
      }
    }
  }
}

