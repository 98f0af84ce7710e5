'use strict';
// Shared harness of the conformance scripts: numbered checks, expected-error helpers, a
// client-side pacer that keeps each action under the emulator's 10/1s window (so only the
// deliberate throttling test is throttled), and the emulator's admin routes.

const DEMO = {
  keyId: 'LTAIemulatorDemoKey',
  secret: 'emulator-demo-secret',
  region: 'cn-hangzhou',
  server: 'ace0706b2ac4454d984295a94213abcd',
  server2: 'bce0706b2ac4454d984295a94213bcde',
  sys1: 's-bp1sys00000001',
  sys2: 's-bp1sys00000002',
  sys3: 's-bp1sys00000003',
  data1: 's-bp1data0000001',
  legacy: 'm-bp1legacyweb000001',
  handMade: 'm-bp1handmade0000001',
  ecsUnused: 'm-bp67acfmxazb4p1234',
  ecsUsed: 'm-bp67acfmxazb4p5678',
};

class Harness {
  constructor(label, port) {
    this.label = label;
    this.port = port;
    this.passed = 0;
    this.failed = 0;
    this.calls = new Map(); // action -> timestamps (ms) of recent calls
  }

  check(name, cond, detail) {
    if (cond) {
      this.passed++;
      console.log(`ok - [${this.label}] ${name}`);
    } else {
      this.failed++;
      console.log(`not ok - [${this.label}] ${name}${detail !== undefined ? ': ' + detail : ''}`);
    }
    return cond;
  }

  // Waits until one more call of `action` fits into 10 calls per 1.2 s (a margin over the
  // emulator's 10/1s), then records it.
  async pace(action) {
    const list = this.calls.get(action) || [];
    for (;;) {
      const now = Date.now();
      while (list.length && now - list[0] >= 1200) list.shift();
      if (list.length < 9) break;
      await sleep(1200 - (now - list[0]) + 5);
    }
    list.push(Date.now());
    this.calls.set(action, list);
  }

  // Runs fn and expects it to fail with the API error `code` (and HTTP status when given).
  async expectError(name, fn, code, status) {
    try {
      const res = await fn();
      this.check(name, false, `expected ${code}, got success ${JSON.stringify(res && (res.body || res))}`);
      return null;
    } catch (err) {
      const got = err.code || (err.data && err.data.Code);
      const st = err.statusCode;
      const ok = got === code && (status === undefined || st === undefined || st === status);
      this.check(name, ok, `expected ${code}/${status}, got ${got}/${st}: ${err.message}`);
      return err;
    }
  }

  async admin(method, path, body) {
    const res = await fetch(`http://127.0.0.1:${this.port}${path}`, {
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
    });
    return { status: res.status, json: await res.json() };
  }

  async reset() {
    const r = await this.admin('POST', '/_emulator/reset', {});
    this.calls.clear();
    if (r.status !== 200) throw new Error('reset failed');
  }

  summary() {
    console.log(`[${this.label}] ${this.passed} passed, ${this.failed} failed`);
    return this.failed === 0 ? 0 : 1;
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Polls fn until it returns a truthy value, at most timeoutMs; returns the last value.
async function waitFor(fn, timeoutMs, stepMs) {
  const end = Date.now() + timeoutMs;
  let v;
  do {
    v = await fn();
    if (v) return v;
    await sleep(stepMs || 100);
  } while (Date.now() < end);
  return v;
}

module.exports = { DEMO, Harness, sleep, waitFor };
