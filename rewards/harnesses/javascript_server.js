'use strict';
// rlvr program server: loads the candidate's program (main.js) and runs it INSIDE the candidate's own process.
// Started by the runner as the candidate's uid: `node rlvr_server.js call` or `... serve`. Nothing here is trusted:
// the program can rewrite any of it, and all it could gain is to choose the data it sends, which it could do by
// returning that data. Whoever reads what this process writes checks every byte.
//   call:  calls fn_name(...args) from rlvr_call.json and writes the return value, tagged JSON (rewards/compare.py),
//          on the RLVR_OUT_FD pipe.
//   serve: answers a harness's requests (one JSON line each on RLVR_IN_FD, one reply line each on RLVR_OUT_FD).
const fs = require('fs');
const vm = require('vm');

const MAX_DEPTH = 200;
const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

class Handles {
  constructor() {
    this.objects = new Map();
    this.next = 1;
  }
  put(value) {
    const key = this.next++;
    this.objects.set(key, value);
    return key;
  }
  get(key) {
    if (!this.objects.has(key)) throw new Error('unknown handle');
    return this.objects.get(key);
  }
}

function number(value) {
  if (Number.isNaN(value)) return { f: 'nan' };
  if (!Number.isFinite(value)) return { f: value > 0 ? 'inf' : '-inf' };
  if (Number.isInteger(value)) return { raw: BigInt(value).toString() };
  const text = String(value);
  return { raw: /[.eE]/.test(text) ? text : text + '.0' };
}

function encode(value, handles, depth) {
  if (depth > MAX_DEPTH) throw new RangeError('the value is nested too deeply');
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case 'boolean':
    case 'string':
      return value;
    case 'number':
      return number(value);
    case 'bigint':
      return { raw: value.toString() };
    default:
  }
  if (Array.isArray(value) && Object.getPrototypeOf(value) === Array.prototype) {
    const items = [];
    for (let index = 0; index < value.length; index++) items.push(encode(value[index], handles, depth + 1));
    return items;
  }
  const proto = typeof value === 'object' ? Object.getPrototypeOf(value) : undefined;
  if (proto === Object.prototype || proto === null) {
    return { d: Object.keys(value).map((key) => [key, encode(value[key], handles, depth + 1)]) };
  }
  if (proto === Map.prototype) {
    return { d: Array.from(value.entries(), ([k, v]) => [encode(k, handles, depth + 1), encode(v, handles, depth + 1)]) };
  }
  if (proto === Set.prototype) {
    return { s: Array.from(value.values(), (item) => encode(item, handles, depth + 1)) };
  }
  const name = (value.constructor && typeof value.constructor.name === 'string' && value.constructor.name) || typeof value;
  const key = handles ? handles.put(value) : 0;
  return { h: handles ? [key, name, typeof value === 'function'] : [key, name] };
}

// Tagged JSON text: numbers come as {raw: text} so that integers keep every digit and floats keep a '.'.
function dump(value) {
  if (value === null || ['boolean', 'string', 'number'].includes(typeof value)) return JSON.stringify(value);
  if (Array.isArray(value)) return '[' + value.map(dump).join(',') + ']';
  if (Object.prototype.hasOwnProperty.call(value, 'raw')) return value.raw;
  const [tag] = Object.keys(value);
  return '{' + JSON.stringify(tag) + ':' + dump(value[tag]) + '}';
}

function decode(value, handles) {
  if (Array.isArray(value)) return value.map((item) => decode(item, handles));
  if (value === null || typeof value !== 'object') return value;
  const [tag] = Object.keys(value);
  const body = value[tag];
  if (tag === 'r') return handles.get(body);
  if (tag === 't' || tag === 'fs') return body.map((item) => decode(item, handles));
  if (tag === 's') return new Set(body.map((item) => decode(item, handles)));
  if (tag === 'd') {
    const pairs = body.map(([k, v]) => [decode(k, handles), decode(v, handles)]);
    if (pairs.every(([k]) => typeof k === 'string')) return Object.fromEntries(pairs);
    return new Map(pairs);
  }
  if (tag === 'f') return Number(body === 'nan' ? NaN : body === 'inf' ? Infinity : -Infinity);
  if (tag === 'b') return Buffer.from(body, 'base64');
  if (tag === 'c') return decode(body[0], handles);
  throw new Error('unknown tag ' + tag);
}

function loadProgram() {
  const source = fs.readFileSync('main.js', 'utf8');
  const program = new vm.Script(source, { filename: 'solution.js' });
  globalThis.require = require;
  globalThis.module = { exports: {} };
  globalThis.exports = globalThis.module.exports;
  program.runInThisContext();
}

function lookup(name) {
  if (!IDENTIFIER.test(name)) return undefined;
  return vm.runInThisContext(
    'typeof ' + name + " === 'undefined' ? (module.exports ? module.exports." + name + ' : undefined) : ' + name,
  );
}

function defines(name) {
  if (!IDENTIFIER.test(name)) return false;
  return vm.runInThisContext(
    '!(typeof ' + name + " === 'undefined') || !!(module.exports && module.exports." + name + ' !== undefined)',
  );
}

function writeAll(fd, text) {
  const data = Buffer.from(text + '\n', 'utf8');
  let offset = 0;
  while (offset < data.length) offset += fs.writeSync(fd, data, offset, data.length - offset);
}

function call(outFd) {
  const testCase = JSON.parse(fs.readFileSync('rlvr_call.json', 'utf8'));
  loadProgram();
  const fn = lookup(testCase.fn_name);
  if (typeof fn !== 'function') {
    process.stderr.write('rlvr: the solution defines no function ' + testCase.fn_name + '\n');
    process.exit(2);
  }
  const value = fn(...testCase.args);
  writeAll(outFd, dump(encode(value, null, 0)));
}

function answer(request, handles) {
  const op = request.op;
  if (op === 'has') return { ok: defines(request.name) };
  if (op === 'global') return { ok: encode(lookup(request.name), handles, 0) };
  const target = handles.get(request.target);
  if (op === 'call') {
    const args = request.args.map((arg) => decode(arg, handles));
    return { ok: encode(target(...args), handles, 0) };
  }
  if (op === 'new') {
    const args = request.args.map((arg) => decode(arg, handles));
    return { ok: encode(new target(...args), handles, 0) };
  }
  if (op === 'method') {
    const args = request.args.map((arg) => decode(arg, handles));
    return { ok: encode(target[request.name](...args), handles, 0) };
  }
  if (op === 'get') return { ok: encode(target[request.name], handles, 0) };
  if (op === 'iter') return { ok: encode(target[Symbol.iterator](), handles, 0) };
  if (op === 'next') {
    const step = target.next();
    return step.done ? { stop: true } : { ok: encode(step.value, handles, 0) };
  }
  if (op === 'str') return { ok: String(target) };
  throw new Error('unknown request ' + op);
}

function* lines(fd) {
  const chunk = Buffer.alloc(1 << 16);
  let pending = Buffer.alloc(0);
  for (;;) {
    let read;
    try {
      read = fs.readSync(fd, chunk, 0, chunk.length, null);
    } catch (err) {
      if (err.code === 'EAGAIN') continue;
      if (err.code === 'EOF') return;
      throw err;
    }
    if (read === 0) return;
    pending = Buffer.concat([pending, chunk.subarray(0, read)]);
    let end;
    while ((end = pending.indexOf(10)) >= 0) {
      yield pending.subarray(0, end).toString('utf8');
      pending = pending.subarray(end + 1);
    }
  }
}

function serve(inFd, outFd) {
  loadProgram();
  const handles = new Handles();
  for (const line of lines(inFd)) {
    let reply;
    try {
      reply = dump(answer(JSON.parse(line), handles));
    } catch (err) {
      const name = err && typeof err.name === 'string' ? err.name : 'Error';
      const message = err && typeof err.message === 'string' ? err.message : String(err);
      reply = JSON.stringify({ raise: [name, message.slice(-2000)] });
    }
    writeAll(outFd, reply);
  }
}

const outFd = Number(process.env.RLVR_OUT_FD);
if (process.argv[2] === 'call') call(outFd);
else serve(Number(process.env.RLVR_IN_FD), outFd);
