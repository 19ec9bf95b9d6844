'use strict';
// rlvr judge harness: runs an item's assert tests against a program that lives in ANOTHER process.
// Started by the runner as the harness uid, in a dir only that uid can read (rlvr_case.json: the test code and
// entry point). The program runs as the candidate uid (rlvr_server.js serve); this process talks to it over two
// pipes and evaluates every assertion here, on plain data decoded from the program's replies, or on proxies for
// its other objects, which are functions of this process that forward calls and equal only themselves. The
// test code's names that this process does not define resolve to the program's globals. The verdict goes to
// RLVR_REPORT_FD, a pipe the program's process never holds.
const fs = require('fs');
const vm = require('vm');
const assert = require('assert');

const MAX_REPLY_BYTES = 16 << 20;
const MAX_DEPTH = 400;

class ProgramGone extends Error {}

const inFd = Number(process.env.RLVR_IN_FD);
const outFd = Number(process.env.RLVR_OUT_FD);
const reportFd = Number(process.env.RLVR_REPORT_FD);
const chunk = Buffer.alloc(1 << 16);
let pending = Buffer.alloc(0);

function readLine() {
  for (;;) {
    const end = pending.indexOf(10);
    if (end >= 0) {
      const line = pending.subarray(0, end).toString('utf8');
      pending = pending.subarray(end + 1);
      return line;
    }
    if (pending.length > MAX_REPLY_BYTES) throw new ProgramGone("the program's reply is too big");
    let read;
    try {
      read = fs.readSync(inFd, chunk, 0, chunk.length, null);
    } catch (err) {
      if (err.code === 'EAGAIN') continue;
      throw new ProgramGone('the program ended before it answered');
    }
    if (read === 0) throw new ProgramGone('the program ended before it answered');
    pending = Buffer.concat([pending, chunk.subarray(0, read)]);
  }
}

function ask(request) {
  const data = Buffer.from(JSON.stringify(request) + '\n', 'utf8');
  let offset = 0;
  try {
    while (offset < data.length) offset += fs.writeSync(outFd, data, offset, data.length - offset);
  } catch (err) {
    throw new ProgramGone('the program stopped reading its requests');
  }
  let reply;
  try {
    reply = JSON.parse(readLine());
  } catch (err) {
    if (err instanceof ProgramGone) throw err;
    throw new ProgramGone("the program's reply is not valid");
  }
  if (reply === null || typeof reply !== 'object' || Array.isArray(reply)) {
    throw new ProgramGone("the program's reply is not valid");
  }
  if (Object.prototype.hasOwnProperty.call(reply, 'raise')) {
    const raised = reply.raise;
    if (!Array.isArray(raised) || raised.length !== 2 || raised.some((part) => typeof part !== 'string')) {
      throw new ProgramGone("the program's reply is not valid");
    }
    const err = new Error(raised[1]);
    err.name = raised[0] === 'AssertionError' ? 'ProgramAssertionError' : raised[0];
    err.rlvrFromProgram = true; // a runtime error of the program, unless the test catches it
    throw err;
  }
  return reply;
}

function request(message) {
  const reply = ask(message);
  if (!Object.prototype.hasOwnProperty.call(reply, 'ok')) throw new ProgramGone("the program's reply is not valid");
  return decode(reply.ok, 0);
}

function list(value) {
  if (!Array.isArray(value)) throw new ProgramGone("the program's value is not valid");
  return value;
}

// Plain data from the program's tagged JSON; proxies for its handles. Integers past 2^53 become BigInt.
function decode(value, depth) {
  if (depth > MAX_DEPTH) throw new ProgramGone("the program's value is nested too deeply");
  if (value === null || typeof value === 'boolean' || typeof value === 'string' || typeof value === 'number') {
    return value;
  }
  if (Array.isArray(value)) return value.map((item) => decode(item, depth + 1));
  if (typeof value !== 'object') throw new ProgramGone("the program's value is not valid");
  const keys = Object.keys(value);
  if (keys.length !== 1) throw new ProgramGone("the program's value is not valid");
  const tag = keys[0];
  const body = value[tag];
  if (tag === 'int' && typeof body === 'string' && /^-?\d+$/.test(body)) return BigInt(body);
  if (tag === 't' || tag === 'fs') return list(body).map((item) => decode(item, depth + 1));
  if (tag === 's') return new Set(list(body).map((item) => decode(item, depth + 1)));
  if (tag === 'd') {
    const pairs = list(body).map((pair) => {
      if (list(pair).length !== 2) throw new ProgramGone("the program's value is not valid");
      return [decode(pair[0], depth + 1), decode(pair[1], depth + 1)];
    });
    if (pairs.every(([key]) => typeof key === 'string')) {
      const object = {};
      for (const [key, item] of pairs) Object.defineProperty(object, key, { value: item, enumerable: true, writable: true, configurable: true });
      return object;
    }
    return new Map(pairs);
  }
  if (tag === 'f' && ['inf', '-inf', 'nan'].includes(body)) {
    return body === 'nan' ? NaN : body === 'inf' ? Infinity : -Infinity;
  }
  if (tag === 'b' && typeof body === 'string') return Buffer.from(body, 'base64');
  if (tag === 'h') {
    const handle = list(body);
    if (handle.length !== 3 || typeof handle[0] !== 'number' || typeof handle[1] !== 'string') {
      throw new ProgramGone("the program's value is not valid");
    }
    return remote(handle[0], handle[1].slice(0, 200));
  }
  throw new ProgramGone("the program's value is not valid");
}

const remotes = new WeakMap();

function encodeArgument(value, depth) {
  if (depth > MAX_DEPTH) throw new TypeError('an argument is nested too deeply');
  if (value === null || value === undefined) return null;
  if (typeof value === 'boolean' || typeof value === 'string') return value;
  if (typeof value === 'number') {
    if (Number.isNaN(value)) return { f: 'nan' };
    if (!Number.isFinite(value)) return { f: value > 0 ? 'inf' : '-inf' };
    return value;
  }
  if (typeof value === 'bigint') return Number(value);
  if ((typeof value === 'function' || typeof value === 'object') && remotes.has(value)) return { r: remotes.get(value) };
  if (Array.isArray(value)) return value.map((item) => encodeArgument(item, depth + 1));
  if (value instanceof Set) return { s: Array.from(value, (item) => encodeArgument(item, depth + 1)) };
  if (value instanceof Map) {
    return { d: Array.from(value, ([k, v]) => [encodeArgument(k, depth + 1), encodeArgument(v, depth + 1)]) };
  }
  if (typeof value === 'object') {
    return { d: Object.keys(value).map((key) => [key, encodeArgument(value[key], depth + 1)]) };
  }
  throw new TypeError('rlvr cannot pass a ' + typeof value + ' to the program (only plain data and its own objects)');
}

function args(list_) {
  return list_.map((arg) => encodeArgument(arg, 0));
}

function remote(id, typeName) {
  const target = function () {};
  const proxy = new Proxy(target, {
    apply(_, thisArg, argumentsList) {
      return request({ op: 'call', target: id, args: args(argumentsList) });
    },
    construct(_, argumentsList) {
      return request({ op: 'new', target: id, args: args(argumentsList) });
    },
    get(_, prop) {
      if (prop === Symbol.iterator) {
        return () => {
          const iterator = request({ op: 'iter', target: id });
          const iteratorId = remotes.get(iterator);
          return {
            next() {
              const reply = ask({ op: 'next', target: iteratorId });
              if (reply.stop === true) return { done: true, value: undefined };
              return { done: false, value: decode(reply.ok, 0) };
            },
            [Symbol.iterator]() {
              return this;
            },
          };
        };
      }
      if (prop === Symbol.toPrimitive || prop === 'toString') {
        return () => request({ op: 'str', target: id });
      }
      if (typeof prop === 'symbol' || prop === 'then' || prop === 'prototype') return undefined;
      const value = request({ op: 'get', target: id, name: prop });
      if (typeof value === 'function' && remotes.has(value)) {
        // a method: called with this object as `this`
        return (...argumentsList) => request({ op: 'method', target: id, name: prop, args: args(argumentsList) });
      }
      return value;
    },
    set() {
      return false;
    },
    has() {
      return false;
    },
    ownKeys() {
      return Reflect.ownKeys(target);
    },
  });
  remotes.set(proxy, id);
  Object.defineProperty(target, 'name', { value: typeName });
  return proxy;
}

// The test code's free names: this process's globals first, then the program's.
const known = new Map();
const scope = new Proxy(Object.create(null), {
  has(_, name) {
    if (typeof name !== 'string' || name in globalThis) return false;
    if (!known.has(name)) known.set(name, request({ op: 'has', name }) === true);
    return known.get(name);
  },
  get(_, name) {
    if (typeof name !== 'string') return undefined;
    return request({ op: 'global', name });
  },
  set() {
    return false;
  },
});

function describe(err) {
  // the message and the test's own frames, not the harness's
  const lines = String(err && err.stack ? err.stack : err).split('\n');
  return lines.filter((line) => !line.includes('rlvr_harness.js') && !line.includes('node:internal')).join('\n').slice(0, 2000);
}

function runTests(testCase) {
  // console.assert only logs in Node: here, as in the test suites it comes from, it fails the test
  console.assert = (condition, ...message) => {
    if (!condition) throw new assert.AssertionError({ message: message.join(' ') || 'console.assert failed' });
  };
  globalThis.require = require;
  globalThis.assert = assert; // suites that use `assert` without requiring it get ours, never the program's
  const entry = testCase.entry_point;
  const tail = entry ? "\n;if (typeof check === 'function') check(" + entry + ');' : '';
  let tests;
  try {
    tests = new vm.Script('with (rlvrScope) {\n' + testCase.code + tail + '\n}', { filename: 'test.js', lineOffset: -1 });
    new vm.Script(testCase.code, { filename: 'test.js' }); // the test code alone must compile too
  } catch (err) {
    return { bad_test: describe(err) };
  }
  globalThis.rlvrScope = scope;
  try {
    tests.runInThisContext();
  } catch (err) {
    if (err instanceof ProgramGone) return { error: err.message };
    if (err && err.code === 'ERR_ASSERTION') return { failed: describe(err) };
    if (err && err.rlvrFromProgram === true) return { raised: describe(err) };
    return { error: describe(err) };
  }
  return { passed: true };
}

function main() {
  const testCase = JSON.parse(fs.readFileSync('rlvr_case.json', 'utf8'));
  const verdict = Buffer.from(JSON.stringify(runTests(testCase)) + '\n', 'utf8');
  let offset = 0;
  while (offset < verdict.length) offset += fs.writeSync(reportFd, verdict, offset, verdict.length - offset);
}

main();
