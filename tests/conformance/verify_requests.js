'use strict';
// Proves that `imgrecon api` sends exactly what the official SDKs would sign. A capture server on
// 127.0.0.1 records every request imgrecon makes (method, path, raw query, headers, body) and
// answers a plausible ListCustomImages page; each captured request is then re-signed with the
// SDKs' own code and the result compared with what imgrecon sent:
//   V1 (HMAC-SHA1): @alicloud/openapi-util getRPCSignature, @alicloud/openapi-core's
//     OpenApiUtil.getRPCSignature (what swas-open20200601 runs), and @alicloud/pop-core's internal
//     normalize/canonicalize/encode + kitx.sha1 (loaded from its own source); then the same call is
//     replayed through pop-core's public RPCClient (same nonce and timestamp) and the signature
//     it puts on the wire must be imgrecon's.
//   V3 (ACS3-HMAC-SHA256): @alicloud/openapi-util getAuthorization (used by openapi-client) and
//     @alicloud/openapi-core's OpenApiUtil.getAuthorization over the request as received.
// Every run also checks the common parameters / headers, the wire encoding of the query, and that
// a tampered copy of the request does not verify (so the comparison is not vacuous).
// usage: node verify_requests.js IMGRECON_BIN
// Prints PASS/FAIL lines and "N passed, N failed"; exit status 0 only when all passed.

const http = require('http');
const fs = require('fs');
const os = require('os');
const path = require('path');
const Module = require('module');
const { spawn } = require('child_process');

const OpenApiUtil = require('@alicloud/openapi-util').default;
const CoreUtil = require('@alicloud/openapi-core').OpenApiUtil;
const { RPCClient } = require('@alicloud/pop-core');

const KEY_ID = 'LTAIverifyRequestsKey';
const SECRET = 'verify-requests-secret';
const TOKEN = 'CAIS+verify/STS==token*~!()';
const ANSWER = {
  RequestId: '6C2E8C7A-0B1D-4E1F-9A5B-VERIFYREQUEST',
  TotalCount: 0,
  PageNumber: 1,
  PageSize: 10,
  CustomImages: [],
};

// The parameters every run sends, in the order given on the command line. They stress the
// percent-encoding (UTF-8, 4-byte UTF-8, * ~ ! ' ( ) and space, reserved URL characters, a JSON
// array), an empty value, byte-order sorting (Tag.1 < Tag.10 < Tag.2, 'Z' < 'a').
const PARAMS = [
  ['RegionId', 'cn-hangzhou'],
  ['Name', '名字'],
  ['Description', "* ~ ! ' ( ) space"],
  ['InstanceId', ''],
  ['ImageIds', '["m-1","m-2"]'],
  ['Symbols', 'a+b/c=d&e%f#g?h:i;j,k@l$m'],
  ['Emoji', '😀 é\u00a0ü'],
  ['alpha', 'lower'],
  ['Zeta', 'upper'],
];
for (let i = 1; i <= 10; i++) {
  PARAMS.push([`Tag.${i}.Key`, `k${i}`]);
  PARAMS.push([`Tag.${i}.Value`, `v ${i}`]);
}

const RUNS = [
  { name: 'V1 GET', sig: 'v1', method: 'GET', product: 'swas', action: 'ListCustomImages', version: '2020-06-01', sts: false },
  { name: 'V1 POST+STS', sig: 'v1', method: 'POST', product: 'swas', action: 'ListCustomImages', version: '2020-06-01', sts: true },
  { name: 'V3 GET+STS', sig: 'v3', method: 'GET', product: 'swas', action: 'ListCustomImages', version: '2020-06-01', sts: true },
  { name: 'V3 POST', sig: 'v3', method: 'POST', product: 'swas', action: 'ListCustomImages', version: '2020-06-01', sts: false },
  { name: 'ECS V1 POST', sig: 'v1', method: 'POST', product: 'ecs', action: 'DescribeImages', version: '2014-05-26', sts: false },
  { name: 'ECS V3 GET', sig: 'v3', method: 'GET', product: 'ecs', action: 'DescribeImages', version: '2014-05-26', sts: false },
];

const V1_COMMON = ['Action', 'Version', 'Format', 'SignatureMethod', 'SignatureVersion',
  'SignatureNonce', 'Timestamp', 'AccessKeyId'];

let passed = 0;
let failed = 0;
function check(name, cond, detail) {
  if (cond) {
    passed++;
    console.log(`PASS ${name}`);
  } else {
    failed++;
    console.log(`FAIL ${name}${detail !== undefined ? ': ' + detail : ''}`);
  }
  return cond;
}

// pop-core does not export its signing helpers; load its own rpc.js source once more with an
// export line appended, so the functions checked are byte for byte the SDK's.
function popCoreInternals() {
  const file = require.resolve('@alicloud/pop-core/lib/rpc.js');
  const src = fs.readFileSync(file, 'utf8') +
    '\nmodule.exports.__signing = { encode, normalize, canonicalize, kitx };\n';
  const m = new Module(file, module);
  m.filename = file;
  m.paths = Module._nodeModulePaths(path.dirname(file));
  m._compile(src, file);
  return m.exports.__signing;
}
const pop = popCoreInternals();

// ---- capture server ----

let captured = [];
function startServer() {
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const q = req.url.indexOf('?');
      captured.push({
        method: req.method,
        path: q < 0 ? req.url : req.url.slice(0, q),
        rawQuery: q < 0 ? '' : req.url.slice(q + 1),
        rawHeaders: req.rawHeaders.slice(),
        headers: req.headers,
        body: Buffer.concat(chunks),
      });
      const body = JSON.stringify(ANSWER);
      res.writeHead(200, { 'content-type': 'application/json;charset=utf-8',
        'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

// Splits a form/query string into [name, value] pairs without any '+' leniency: a '+' that was
// meant as a space stays a '+' and the value check catches it.
function splitPairs(raw) {
  if (raw === '') return [];
  return raw.split('&').map((p) => {
    const eq = p.indexOf('=');
    return eq < 0 ? [p, undefined] : [p.slice(0, eq), p.slice(eq + 1)];
  });
}

function decodePairs(rawPairs) {
  return rawPairs.map(([k, v]) => [decodeURIComponent(k), v === undefined ? undefined : decodeURIComponent(v)]);
}

// Headers as the SDK's request object holds them: lowercase names (Node delivers them so);
// duplicates are reported separately because an object cannot carry them.
function headerObject(rawHeaders) {
  const obj = {};
  const dups = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const k = rawHeaders[i].toLowerCase();
    if (k in obj) dups.push(k);
    obj[k] = rawHeaders[i + 1];
  }
  return { obj, dups };
}

function timestampOk(ts) {
  if (typeof ts !== 'string' || !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(ts)) return false;
  return Math.abs(Date.parse(ts) - Date.now()) < 10 * 60 * 1000;
}

function runImgrecon(bin, port, run, tmp) {
  const stateDir = fs.mkdtempSync(path.join(tmp, 'state-'));
  const cfg = path.join(tmp, `config-${run.sig}.yaml`);
  // account_id given: the request under test is the only one (no STS GetCallerIdentity first).
  fs.writeFileSync(cfg, `signature: ${run.sig}\naccount_id: '1234567890123456'\n`);
  const env = {};
  for (const [k, v] of Object.entries(process.env))
    if (!/^(ALIBABA_CLOUD_|ALICLOUD_|IMGRECON_)/.test(k)) env[k] = v;
  env.HOME = tmp; // no ~/.aliyun or ~/.alibabacloud profile can interfere
  env.ALIBABA_CLOUD_ACCESS_KEY_ID = KEY_ID;
  env.ALIBABA_CLOUD_ACCESS_KEY_SECRET = SECRET;
  if (run.sts) env.ALIBABA_CLOUD_SECURITY_TOKEN = TOKEN;
  const args = ['api', '-c', cfg, '--endpoint', `http://127.0.0.1:${port}`, '--state-dir', stateDir,
    '--rate-limit', '10/1s', '--method', run.method, '--compact', run.product, run.action]
    .concat(PARAMS.map(([k, v]) => `${k}=${v}`));
  return new Promise((resolve) => {
    const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, err });
    });
  });
}

// ---- checks ----

function checkWireEncoding(label, rawPairs) {
  const bad = rawPairs.filter(([k, v]) => v === undefined ||
    pop.encode(decodeURIComponent(k)) !== k || pop.encode(decodeURIComponent(v)) !== v);
  check(`${label}: every query name/value is percent-encoded exactly as the SDK encodes it`,
    bad.length === 0, JSON.stringify(bad));
}

function checkUserParams(label, params, exact) {
  const wanted = new Map(PARAMS);
  const wrong = [];
  for (const [k, v] of wanted) if (params.get(k) !== v) wrong.push(`${k}: sent ${JSON.stringify(params.get(k))}, want ${JSON.stringify(v)}`);
  check(`${label}: every caller parameter arrives with its exact UTF-8 value`, wrong.length === 0, wrong.join('; '));
  if (exact) {
    const extra = [...params.keys()].filter((k) => !wanted.has(k));
    check(`${label}: the query carries the caller's parameters and nothing else`, extra.length === 0, extra.join(','));
  }
}

async function verifyV1(label, run, req, port, nonces) {
  const rawPairs = splitPairs(req.rawQuery).concat(splitPairs(req.body.toString('utf8')));
  checkWireEncoding(label, splitPairs(req.rawQuery));
  const pairs = decodePairs(rawPairs);
  const names = pairs.map(([k]) => k);
  const dups = names.filter((k, i) => names.indexOf(k) !== i);
  check(`${label}: no parameter is sent twice`, dups.length === 0, dups.join(','));
  const params = new Map(pairs);
  checkUserParams(label, params, false);

  const want = { Action: run.action, Version: run.version, Format: 'JSON', SignatureMethod: 'HMAC-SHA1',
    SignatureVersion: '1.0', AccessKeyId: KEY_ID };
  const missing = V1_COMMON.filter((k) => !params.has(k) || params.get(k) === '');
  check(`${label}: V1 common parameters present (${V1_COMMON.join(' ')})`, missing.length === 0, missing.join(','));
  const wrong = Object.entries(want).filter(([k, v]) => params.get(k) !== v);
  check(`${label}: Action/Version/Format/SignatureMethod/SignatureVersion/AccessKeyId values`,
    wrong.length === 0, wrong.map(([k, v]) => `${k}=${params.get(k)} want ${v}`).join('; '));
  check(`${label}: Timestamp is UTC YYYY-MM-DDThh:mm:ssZ and current`, timestampOk(params.get('Timestamp')),
    params.get('Timestamp'));
  const nonce = params.get('SignatureNonce');
  check(`${label}: SignatureNonce is fresh`, typeof nonce === 'string' && nonce.length >= 16 && !nonces.has(nonce), nonce);
  nonces.add(nonce);
  if (run.sts) check(`${label}: SecurityToken carries the STS token`, params.get('SecurityToken') === TOKEN, params.get('SecurityToken'));
  else check(`${label}: no SecurityToken without STS`, !params.has('SecurityToken'));
  check(`${label}: no V3 authorization header on a V1 request`, req.headers.authorization === undefined);

  const sent = params.get('Signature');
  const signed = {};
  for (const [k, v] of params) if (k !== 'Signature') signed[k] = v;
  const sigUtil = OpenApiUtil.getRPCSignature(signed, req.method, SECRET);
  check(`${label}: Signature == @alicloud/openapi-util getRPCSignature`, sent === sigUtil, `sent ${sent}, SDK ${sigUtil}`);
  const sigCore = CoreUtil.getRPCSignature(signed, req.method, SECRET);
  check(`${label}: Signature == @alicloud/openapi-core getRPCSignature`, sent === sigCore, `sent ${sent}, SDK ${sigCore}`);
  const canonical = pop.canonicalize(pop.normalize(signed));
  const sts = `${req.method}&${pop.encode('/')}&${pop.encode(canonical)}`;
  const sigPop = pop.kitx.sha1(sts, SECRET + '&', 'base64');
  check(`${label}: Signature == @alicloud/pop-core internal signer`, sent === sigPop, `sent ${sent}, SDK ${sigPop}`);
  const tampered = Object.assign({}, signed, { Name: '名' });
  check(`${label}: a tampered parameter does not verify (control)`,
    OpenApiUtil.getRPCSignature(tampered, req.method, SECRET) !== sent);
  const otherMethod = req.method === 'GET' ? 'POST' : 'GET';
  check(`${label}: the HTTP method is part of the signature (control)`,
    OpenApiUtil.getRPCSignature(signed, otherMethod, SECRET) !== sent);

  // Replay through pop-core's public client: same parameters, nonce and timestamp.
  const client = new RPCClient({ accessKeyId: KEY_ID, accessKeySecret: SECRET,
    securityToken: run.sts ? TOKEN : undefined, endpoint: `http://127.0.0.1:${port}`, apiVersion: run.version });
  const replayParams = {};
  for (const [k, v] of PARAMS) replayParams[k] = v;
  replayParams.Timestamp = params.get('Timestamp');
  replayParams.SignatureNonce = nonce;
  captured = [];
  try {
    await client.request(run.action, replayParams, { method: run.method, formatParams: false,
      agent: new http.Agent({ keepAlive: false }), timeout: 10000 });
  } catch (e) {
    check(`${label}: pop-core replay`, false, e.message);
    return;
  }
  const r = captured[0];
  const popPairs = decodePairs(splitPairs(r.rawQuery).concat(splitPairs(r.body.toString('utf8'))));
  const popParams = new Map(popPairs);
  check(`${label}: pop-core RPCClient replay puts imgrecon's Signature on the wire`,
    popParams.get('Signature') === sent, `pop-core ${popParams.get('Signature')}, imgrecon ${sent}`);
  const a = JSON.stringify([...params].sort());
  const b = JSON.stringify([...popParams].sort());
  check(`${label}: pop-core replay sends the same parameter set`, a === b, `imgrecon ${a}\npop-core ${b}`);
}

function verifyV3(label, run, req, port, nonces) {
  const rawPairs = splitPairs(req.rawQuery);
  checkWireEncoding(label, rawPairs);
  const pairs = decodePairs(rawPairs);
  const names = pairs.map(([k]) => k);
  const dupq = names.filter((k, i) => names.indexOf(k) !== i);
  check(`${label}: no parameter is sent twice`, dupq.length === 0, dupq.join(','));
  const params = new Map(pairs);
  checkUserParams(label, params, true);

  const { obj: headers, dups } = headerObject(req.rawHeaders);
  check(`${label}: no header is sent twice`, dups.length === 0, dups.join(','));
  const hwant = { host: `127.0.0.1:${port}`, 'x-acs-action': run.action, 'x-acs-version': run.version };
  const hwrong = Object.entries(hwant).filter(([k, v]) => headers[k] !== v);
  check(`${label}: host, x-acs-action, x-acs-version`, hwrong.length === 0,
    hwrong.map(([k, v]) => `${k}: ${headers[k]} want ${v}`).join('; '));
  check(`${label}: x-acs-date is UTC YYYY-MM-DDThh:mm:ssZ and current`, timestampOk(headers['x-acs-date']), headers['x-acs-date']);
  const nonce = headers['x-acs-signature-nonce'];
  check(`${label}: x-acs-signature-nonce is fresh`, typeof nonce === 'string' && nonce.length >= 16 && !nonces.has(nonce), nonce);
  nonces.add(nonce);
  const payload = OpenApiUtil.hash(req.body, 'ACS3-HMAC-SHA256').toString('hex');
  check(`${label}: x-acs-content-sha256 is the SDK's hash of the body received (${req.body.length} bytes)`,
    headers['x-acs-content-sha256'] === payload, `${headers['x-acs-content-sha256']} vs ${payload}`);
  if (run.sts) check(`${label}: x-acs-security-token carries the STS token`, headers['x-acs-security-token'] === TOKEN, headers['x-acs-security-token']);
  else check(`${label}: no x-acs-security-token without STS`, headers['x-acs-security-token'] === undefined);

  const sent = headers.authorization || '';
  const m = /^ACS3-HMAC-SHA256 Credential=([^,]*),SignedHeaders=([^,]*),Signature=([0-9a-f]{64})$/.exec(sent);
  check(`${label}: Authorization is "ACS3-HMAC-SHA256 Credential=${KEY_ID},SignedHeaders=...,Signature=<hex>"`,
    m !== null && m[1] === KEY_ID, sent);

  const request = { method: req.method, pathname: req.path, query: Object.fromEntries(params), headers };
  const sdkHeaders = OpenApiUtil.getAuthorization(request, 'ACS3-HMAC-SHA256', payload, KEY_ID, SECRET);
  const sh = /SignedHeaders=([^,]*)/.exec(sdkHeaders)[1];
  check(`${label}: SignedHeaders covers every host/content-type/x-acs-* header sent (SDK list: ${sh})`,
    m !== null && m[2] === sh, `imgrecon ${m && m[2]}`);
  const required = ['host', 'x-acs-action', 'x-acs-content-sha256', 'x-acs-date', 'x-acs-signature-nonce', 'x-acs-version']
    .concat(run.sts ? ['x-acs-security-token'] : []);
  const signedList = m ? m[2].split(';') : [];
  const unsigned = required.filter((h) => !signedList.includes(h));
  check(`${label}: required headers are signed`, unsigned.length === 0, unsigned.join(','));
  check(`${label}: Authorization == @alicloud/openapi-util getAuthorization`, sent === sdkHeaders, `\n  sent ${sent}\n  SDK  ${sdkHeaders}`);
  const sdkCore = CoreUtil.getAuthorization(request, 'ACS3-HMAC-SHA256', payload, KEY_ID, SECRET);
  check(`${label}: Authorization == @alicloud/openapi-core getAuthorization`, sent === sdkCore, `\n  sent ${sent}\n  SDK  ${sdkCore}`);
  const tampered = Object.assign({}, request, { query: Object.assign({}, request.query, { Name: '名' }) });
  check(`${label}: a tampered query does not verify (control)`,
    OpenApiUtil.getAuthorization(tampered, 'ACS3-HMAC-SHA256', payload, KEY_ID, SECRET) !== sent);
  const tamperedH = Object.assign({}, request, { headers: Object.assign({}, headers, { 'x-acs-action': 'DeleteCustomImage' }) });
  check(`${label}: a tampered x-acs-action does not verify (control)`,
    OpenApiUtil.getAuthorization(tamperedH, 'ACS3-HMAC-SHA256', payload, KEY_ID, SECRET) !== sent);
}

async function main() {
  const bin = process.argv[2];
  if (!bin || !fs.existsSync(bin)) {
    console.error('usage: node verify_requests.js IMGRECON_BIN');
    process.exit(2);
  }
  // The SDK code itself against the vendor's worked examples (provider/README.md "Signatures"),
  // so a match below means "what the vendor's signer computes", not "two copies of one mistake".
  const v1Example = OpenApiUtil.getRPCSignature({ Action: 'DescribeRegions', Format: 'XML', AccessKeyId: 'testid',
    SignatureMethod: 'HMAC-SHA1', SignatureNonce: '3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf', SignatureVersion: '1.0',
    Timestamp: '2016-02-23T12:46:24Z', Version: '2014-05-26' }, 'GET', 'testsecret');
  check('SDK self-check: getRPCSignature reproduces the vendor V1 example', v1Example === 'OLeaidS1JvxuMvnyHOwuJ+uX5qY=', v1Example);
  const v3Example = OpenApiUtil.getAuthorization({ method: 'POST', pathname: '/',
    query: { ImageId: 'win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd', RegionId: 'cn-shanghai' },
    headers: { host: 'ecs.cn-shanghai.aliyuncs.com', 'x-acs-action': 'RunInstances', 'x-acs-version': '2014-05-26',
      'x-acs-date': '2023-10-26T10:22:32Z', 'x-acs-signature-nonce': '3156853299f313e23d1673dc12e1703d',
      'x-acs-content-sha256': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' } },
  'ACS3-HMAC-SHA256', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'YourAccessKeyId', 'YourAccessKeySecret');
  check('SDK self-check: getAuthorization reproduces the vendor V3 example',
    v3Example.endsWith('Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0'), v3Example);

  const server = await startServer();
  const port = server.address().port;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'imgrecon-verify-'));
  const nonces = new Set();
  try {
    for (const run of RUNS) {
      const label = `[${run.name}]`;
      captured = [];
      const res = await runImgrecon(bin, port, run, tmp);
      const ok = check(`${label}: imgrecon api ${run.product} ${run.action} --method ${run.method} exits 0`,
        res.code === 0, `exit ${res.code}${res.signal ? ' signal ' + res.signal : ''}; stderr: ${res.err.trim()}`);
      let doc = null;
      try { doc = JSON.parse(res.out); } catch (e) { /* reported below */ }
      check(`${label}: prints the answer as JSON`, JSON.stringify(doc) === JSON.stringify(ANSWER), res.out.trim());
      check(`${label}: stderr is empty`, res.err === '', res.err.trim());
      for (const s of [SECRET, TOKEN])
        if (res.out.includes(s) || res.err.includes(s)) check(`${label}: output carries no secret`, false);
      if (!check(`${label}: exactly one request reached the server`, captured.length === 1, `${captured.length} requests`) || !ok)
        continue;
      const req = captured[0];
      check(`${label}: method ${run.method} on path /`, req.method === run.method && req.path === '/', `${req.method} ${req.path}`);
      if (run.sig === 'v1') await verifyV1(label, run, req, port, nonces);
      else verifyV3(label, run, req, port, nonces);
    }
  } finally {
    server.close();
    if (server.closeAllConnections) server.closeAllConnections();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((e) => {
  console.log(`FAIL unexpected error: ${e.stack || e}`);
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
});
