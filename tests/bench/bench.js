#!/usr/bin/env node
/*
 * Convergence benchmark (issue 8): runs scenarios against the real imgrecon-emulator with scaled
 * rate limits, measures imgrecon's wall time to convergence, computes the lower bound the
 * per-action limits and dependencies allow, and runs two baseline strategies with the official
 * SDK (@alicloud/swas-open20200601) against the same emulator:
 *   serial  - one call every W/N, in dependency order (a careful shell script, terraform -parallelism=1)
 *   burst   - fire every ready call at once, back off exponentially on Throttling and retry
 *
 * Usage: node tests/bench/bench.js [--build DIR] [--window 2s] [--calls 10] [--create-delay 1s]
 *                                  [--runs 3] [--scenario NAME]... [--no-baselines] [--json FILE]
 *                                  [--timeline DIR] [--baseline serial|burst]... [--cold] [--no-warmup]
 * Prints one table per scenario; --json writes every figure, --timeline writes the per-action
 * call timeline (seconds since start) of the replace scenario for tests/bench/plot.sh.
 * imgrecon's first run of each scenario is a warm-up without build-time samples (reported as
 * "cold"); the measured runs then start with the samples the previous run journaled, as a
 * deployment's state directory would hold them. --no-warmup measures from the first run;
 * --cold never carries samples. --baseline limits the baselines to the ones named.
 * BENCH_DEBUG=1 prints each run's emulator journal (seconds since its first call, action, code).
 */
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const http = require('http');
const { spawn } = require('child_process');

const ROOT = path.resolve(__dirname, '..', '..');
/* The official SDK: the copy tests/conformance/run.sh installs, else one installed here. */
const SDK_DIRS = [path.join(ROOT, 'tests', 'conformance', 'node_modules'), path.join(__dirname, 'node_modules')];
module.paths.unshift(...SDK_DIRS);
const KEY_ID = 'LTAIbenchKey0001';
const KEY_SECRET = 'bench-secret-0001';
const MUTATING = ['CreateCustomImage', 'ModifyImageShareStatus', 'DeleteCustomImage', 'DeleteCustomImages'];
const BATCH_MAX = 15; /* DeleteCustomImages takes up to 15 ids */

function parseDuration(s) {
    const m = /^(\d+)(ms|s|m|h)$/.exec(s);
    if (!m) throw new Error(`bad duration ${s}`);
    return Number(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2]];
}

function parseArgs(argv) {
    const o = { build: path.join(ROOT, 'build'), windowMs: 2000, calls: 10, createDelayMs: 1000,
                runs: 3, scenarios: [], baselines: true, json: null, timeline: null, learn: true, warmup: true };
    for (let i = 2; i < argv.length; i++) {
        const a = argv[i], v = argv[i + 1];
        switch (a) {
        case '--build': o.build = path.resolve(v); i++; break;
        case '--window': o.windowMs = parseDuration(v); i++; break;
        case '--calls': o.calls = Number(v); i++; break;
        case '--create-delay': o.createDelayMs = parseDuration(v); i++; break;
        case '--runs': o.runs = Number(v); i++; break;
        case '--scenario': o.scenarios.push(v); i++; break;
        case '--no-baselines': o.baselines = false; break;
        case '--baseline': o.only = (o.only || []).concat([v]); i++; break;
        case '--cold': o.learn = false; o.warmup = false; break;
        case '--no-warmup': o.warmup = false; break;
        case '--json': o.json = path.resolve(v); i++; break;
        case '--timeline': o.timeline = path.resolve(v); i++; break;
        default: throw new Error(`unknown argument ${a}`);
        }
    }
    return o;
}

/* ---------- scenarios: an emulator fixture (before) and manifests (after) ---------- */

function serverId(r, i) { return `a${String(r).padStart(3, '0')}${String(i).padStart(4, '0')}` + 'e0706b2ac4454d984295a942'; }
function sysSnap(r, i) { return `s-r${r}sys${String(i).padStart(6, '0')}`; }
function regionName(r) { return r === 0 ? 'cn-hangzhou' : `cn-bench-${String(r).padStart(3, '0')}`; }

/* A region with `servers` servers (quota min(3*servers,15)), `images` existing images (first
 * `shared` of them shared, all owned by imgrecon), and `want` declared images named prefix-N. */
function region(r, { servers = 5, existing = [], want = [] }) {
    return { r, servers, existing, want };
}

function makeScenario(name) {
    switch (name) {
    case 'create15':
        /* 15 creates with shares into an empty region. */
        return { name, desc: '15 creates + 15 shares into an empty region (quota 15)',
                 regions: [region(0, { want: range(15).map(i => ({ name: `web-${i}`, share: true })) })] };
    case 'replace15':
        /* A full region whose 15 images (10 shared) are all replaced by 15 new ones. */
        return { name, desc: 'full region (15/15, 10 shared) replaced by 15 new shared images',
                 regions: [region(0, {
                     existing: range(15).map(i => ({ name: `old-${i}`, shared: i < 10 })),
                     want: range(15).map(i => ({ name: `new-${i}`, share: true })) })] };
    case 'prune15':
        /* A full region whose 15 owned images are all pruned (undeclared) and 15 others declared:
         * every create waits for a delete. */
        return { name, desc: 'full region (15/15) pruned and replaced by 15 new images',
                 regions: [region(0, {
                     existing: range(15).map(i => ({ name: `stale-${i}`, shared: false })),
                     want: range(15).map(i => ({ name: `fresh-${i}`, share: false })) })] };
    case 'spread100':
        /* 100 images across 10 regions. */
        return { name, desc: '100 creates across 10 regions (no shares)',
                 regions: range(10).map(r => region(r, { servers: 4, want: range(10).map(i => ({ name: `app-${i}`, share: false })) })) };
    case 'nochange1500':
        /* A no-change cycle over 1,500 images: 100 regions at quota 15. */
        return { name, desc: 'no-change cycle over 1,500 images in 100 regions', nochange: true,
                 regions: range(100).map(r => region(r, {
                     existing: range(15).map(i => ({ name: `img-${i}`, shared: i % 2 === 0 })),
                     want: range(15).map(i => ({ name: `img-${i}`, share: i % 2 === 0 })) })) };
    default:
        throw new Error(`unknown scenario ${name}`);
    }
}

function range(n) { return Array.from({ length: n }, (_, i) => i); }

function fixtureYaml(sc) {
    const lines = ['accounts:', `  - access_key_id: ${KEY_ID}`, `    access_key_secret: ${KEY_SECRET}`,
                   '    user_id: 1234567890123456', 'regions:'];
    for (const reg of sc.regions) {
        lines.push(`  - region: ${regionName(reg.r)}`, '    servers:');
        for (let s = 0; s < reg.servers; s++) {
            lines.push(`      - instance_id: ${serverId(reg.r, s)}`, `        name: srv-${s}`,
                       '        status: Running', `        system_snapshots: [${sysSnap(reg.r, s)}]`);
        }
        lines.push(reg.existing.length ? '    custom_images:' : '    custom_images: []');
        reg.existing.forEach((img, i) => {
            lines.push(`      - image_id: m-bench${String(reg.r).padStart(3, '0')}x${String(i).padStart(4, '0')}`,
                       `        name: ${img.name}`, `        instance_id: ${serverId(reg.r, i % reg.servers)}`,
                       `        system_snapshot_id: ${sysSnap(reg.r, i % reg.servers)}`,
                       '        status: "1"', `        in_share: ${img.shared ? 'true' : 'false'}`,
                       '        tags: {imgrecon/owner: bench}');
        });
    }
    return lines.join('\n') + '\n';
}

function manifestYaml(sc) {
    const docs = [];
    for (const reg of sc.regions) {
        const lines = [`region: ${regionName(reg.r)}`, reg.want.length ? 'custom_images:' : 'custom_images: []'];
        reg.want.forEach((img, i) => {
            const s = i % reg.servers;
            lines.push(`  - name: ${img.name}`, `    instance_id: ${serverId(reg.r, s)}`,
                       `    system_snapshot_id: ${sysSnap(reg.r, s)}`, `    share_to_ecs: ${img.share}`);
        });
        docs.push(lines.join('\n'));
    }
    return docs.join('\n---\n') + '\n';
}

/* ---------- the task graph of a scenario, shared by the bound and the baselines ---------- */

/* Tasks: {id, action, region, name, deps:[ids], after: ms that must pass after the deps finish}.
 * Per region: unshare shared images that go; delete images that go; create missing images,
 * each create beyond the free quota depending on one delete; share after create + create delay.
 * With batch (the lower bound; imgrecon's deletes), the deletes of a region go in calls of up to
 * 15 ids, DeleteCustomImages (a group of one stays DeleteCustomImage), each after the unshares of
 * its images; the baselines keep one DeleteCustomImage per image, as every peer does. */
function taskGraph(sc, createDelayMs, batch = false) {
    const tasks = [];
    const add = (t) => { t.id = tasks.length; tasks.push(t); return t.id; };
    for (const reg of sc.regions) {
        const want = new Map(reg.want.map(w => [w.name, w]));
        const quota = Math.min(3 * reg.servers, 15);
        const deletes = [];
        reg.existing.forEach((img) => {
            const w = want.get(img.name);
            if (w) {
                if (w.share !== img.shared)
                    add({ action: 'ModifyImageShareStatus', region: reg.r, name: img.name, op: w.share ? 'Share' : 'UnShare', deps: [], after: 0 });
                return;
            }
            const deps = [];
            if (img.shared) deps.push(add({ action: 'ModifyImageShareStatus', region: reg.r, name: img.name, op: 'UnShare', deps: [], after: 0 }));
            if (batch) deletes.push({ name: img.name, deps });
            else deletes.push(add({ action: 'DeleteCustomImage', region: reg.r, name: img.name, deps, after: 0 }));
        });
        if (batch) {
            /* One task per batch; deletes[k] becomes the id of the batch holding image k. */
            const groups = [];
            for (let k = 0; k < deletes.length; k += BATCH_MAX) groups.push(deletes.slice(k, k + BATCH_MAX));
            /* imgrecon lists a batch's images once more just before deleting them (a look: the
             * observation may be minutes old), so each batch waits for one List call. */
            const ids = groups.map(g => {
                const look = add({ action: 'ListCustomImages', region: reg.r, look: true, deps: g.flatMap(x => x.deps), after: 0 });
                return add({ action: g.length > 1 ? 'DeleteCustomImages' : 'DeleteCustomImage', region: reg.r,
                             name: g.map(x => x.name).join(','), n: g.length, deps: [look], after: 0 });
            });
            deletes.splice(0, deletes.length, ...deletes.map((_, k) => ids[Math.floor(k / BATCH_MAX)]));
        }
        const have = new Set(reg.existing.map(e => e.name));
        let free = quota - reg.existing.length;
        let d = 0;
        reg.want.forEach((w) => {
            if (have.has(w.name)) return;
            const deps = [];
            if (free > 0) free--; else deps.push(deletes[d++]);
            const c = add({ action: 'CreateCustomImage', region: reg.r, name: w.name, share: w.share, deps, after: 0 });
            if (w.share) add({ action: 'ModifyImageShareStatus', region: reg.r, name: w.name, op: 'Share', deps: [c], after: createDelayMs });
        });
    }
    return tasks;
}

/* Lower bound: an event-driven greedy schedule with zero network latency. Each action has its
 * own sliding window (at most N starts in any W); a task may start once its deps have finished
 * (+ `after`, the create delay before a share). Observing costs the List calls one per region
 * (1 call per 100 images) before anything else. Greedy earliest-start is optimal here because
 * the tasks of one action are interchangeable unit jobs and every dependency chain is
 * monotone, so delaying a start never lets a later one begin earlier. */
function lowerBound(sc, o) {
    const tasks = taskGraph(sc, o.createDelayMs, true);
    const listCalls = sc.regions.reduce((n, r) => n + Math.max(1, Math.ceil(r.existing.length / 100)), 0);
    const starts = {};
    const slot = (action, t) => {
        const s = (starts[action] = starts[action] || []);
        while (true) {
            const inWindow = s.filter(x => x > t - o.windowMs);
            if (inWindow.length < o.calls) { s.push(t); return t; }
            t = Math.min(...inWindow) + o.windowMs;
        }
    };
    let observeEnd = 0;
    for (let i = 0; i < listCalls; i++) observeEnd = Math.max(observeEnd, slot('ListCustomImages', 0));
    const finish = new Array(tasks.length).fill(null);
    let remaining = tasks.length, now = observeEnd;
    while (remaining > 0) {
        let progressed = false;
        for (const t of tasks) {
            if (finish[t.id] !== null) continue;
            if (!t.deps.every(d => finish[d] !== null)) continue;
            const ready = Math.max(observeEnd, ...t.deps.map(d => finish[d] + (t.after || 0)));
            finish[t.id] = slot(t.action, ready);
            remaining--; progressed = true;
        }
        if (!progressed) throw new Error('dependency cycle');
    }
    /* A create is converged only when its image is available (create delay after the call). */
    let end = observeEnd;
    for (const t of tasks) end = Math.max(end, finish[t.id] + (t.action === 'CreateCustomImage' ? o.createDelayMs : 0));
    /* Minimum List calls: the observe calls, plus the polls an oracle that knows the create
     * delay needs to see every creation finish on time in this schedule: one
     * ListCustomImages(ImageIds) per region per distinct availability time (up to 100 ids). */
    const avail = new Map();
    for (const t of tasks) {
        if (t.action !== 'CreateCustomImage') continue;
        const k = `${t.region}/${finish[t.id] + o.createDelayMs}`;
        avail.set(k, (avail.get(k) || 0) + 1);
    }
    let polls = 0;
    for (const n of avail.values()) polls += Math.ceil(n / 100);
    const minCalls = { ListCustomImages: listCalls + polls };
    for (const t of tasks) minCalls[t.action] = (minCalls[t.action] || 0) + 1;
    const deleted = tasks.filter(t => /^DeleteCustomImages?$/.test(t.action)).reduce((n, t) => n + (t.n || 1), 0);
    return { ms: end, minCalls, minPolls: polls, minLooks: tasks.filter(t => t.look).length, tasks, deleted };
}

/* ---------- processes and HTTP ---------- */

function run(cmd, args, opts = {}) {
    return new Promise((resolve) => {
        const t0 = process.hrtime.bigint(), wall0 = Date.now();
        const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
        let out = '', err = '';
        p.stdout.on('data', d => { out += d; });
        p.stderr.on('data', d => { err += d; });
        const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs || 15 * 60 * 1000);
        p.on('close', (code) => {
            clearTimeout(timer);
            resolve({ code, out, err, ms: Number(process.hrtime.bigint() - t0) / 1e6, wall0 });
        });
    });
}

function httpJson(port, method, p) {
    return new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, method, path: p, timeout: 30000 }, (res) => {
            let body = '';
            res.on('data', d => { body += d; });
            res.on('end', () => { try { resolve(body ? JSON.parse(body) : null); } catch (e) { reject(e); } });
        });
        req.on('error', reject);
        req.end();
    });
}

async function startEmulator(o, dir, fixture) {
    const portFile = path.join(dir, 'port');
    const journal = path.join(dir, 'emulator.jsonl');
    const emu = spawn(path.join(o.build, 'imgrecon-emulator'),
        ['--listen', '127.0.0.1:0', '--port-file', portFile, '--fixture', fixture,
         '--rate-limit', `${o.calls}/${o.windowMs}ms`, '--create-delay', `${o.createDelayMs}ms`,
         '--journal', journal], { stdio: ['ignore', 'ignore', 'ignore'] });
    const deadline = Date.now() + 20000;
    while (Date.now() < deadline) {
        if (fs.existsSync(portFile) && fs.readFileSync(portFile, 'utf8').trim()) break;
        await new Promise(r => setTimeout(r, 50));
    }
    const port = Number(fs.readFileSync(portFile, 'utf8').trim());
    return { emu, port, journal };
}

function readJournal(file, fromLine = 0) {
    if (!fs.existsSync(file)) return [];
    return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).slice(fromLine).map(l => JSON.parse(l));
}

/* The ids a ListCustomImages(ImageIds) call asked for ([] when unreadable). */
function listedIds(l) {
    try { return JSON.parse(l.params.ImageIds); } catch (e) { return []; }
}

/* Calls per action, throttled calls, and the List calls by ids: polls (they ask for an image
 * created in the run) and looks (imgrecon's listing of images it is about to delete). */
function summarize(lines) {
    const calls = {}, throttled = {};
    const created = new Set(lines.filter(l => l.action === 'CreateCustomImage' && l.image_id).map(l => l.image_id));
    let polls = 0, looks = 0;
    for (const l of lines) {
        calls[l.action] = (calls[l.action] || 0) + 1;
        if (l.action === 'ListCustomImages' && l.params && l.params.ImageIds) {
            if (listedIds(l).some(id => created.has(id))) polls++; else looks++;
        }
        if (l.code && /Throttling/.test(l.code)) throttled[l.action] = (throttled[l.action] || 0) + 1;
    }
    return { calls, polls, looks, throttledBy: throttled, throttled: Object.values(throttled).reduce((a, b) => a + b, 0) };
}

/* Checks the emulator's world against the scenario's desired state. */
async function converged(port, sc) {
    const st = await httpJson(port, 'GET', '/_emulator/state');
    for (const reg of sc.regions) {
        const r = (st.regions || []).find(x => x.region === regionName(reg.r));
        const imgs = (r && r.custom_images) || [];
        const names = imgs.map(i => i.name);
        if (new Set(names).size !== names.length) return `duplicate image in ${regionName(reg.r)}`;
        for (const w of reg.want) {
            const i = imgs.find(x => x.name === w.name);
            if (!i) return `${w.name} missing in ${regionName(reg.r)}`;
            if (String(i.status) !== '1') return `${w.name} status ${i.status}`;
            if (Boolean(i.in_share) !== w.share) return `${w.name} in_share ${i.in_share}`;
        }
        if (imgs.length !== reg.want.length) return `${imgs.length} images in ${regionName(reg.r)}, want ${reg.want.length}`;
    }
    return null;
}

/* ---------- strategies ---------- */

/* Build-time samples (the journal's ImageAvailable lines) carried from one imgrecon run of a
 * scenario to the next, as a deployment's state directory would keep them. Only these lines:
 * the rest of the journal names images of an emulator that is gone. */
const learned = new Map();

let lastSpawnWall = 0;
const accounts = new Map(); /* scenario -> the state directory's account_ids file */
async function runImgrecon(o, dir, port, manifests, scName) {
    const state = path.join(dir, 'state');
    fs.mkdirSync(state, { mode: 0o700 });
    const history = o.learn ? (learned.get(scName) || []) : [];
    if (history.length) fs.writeFileSync(path.join(state, 'journal.jsonl'), history.join('\n') + '\n', { mode: 0o600 });
    /* A deployment's state directory also keeps the account id learned from STS (account_ids),
     * so only the cold run pays GetCallerIdentity. */
    const acct = o.learn ? accounts.get(scName) : undefined;
    if (acct) fs.writeFileSync(path.join(state, 'account_ids'), acct, { mode: 0o600 });
    const env = { ...process.env, ALIBABA_CLOUD_ACCESS_KEY_ID: KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET: KEY_SECRET };
    /* The replace scenario deletes undeclared images imgrecon owns: prune on, and the
     * max_deletes guard (default 5) raised above the scenario's 15 deletes. */
    const config = path.join(dir, 'config.yaml');
    fs.writeFileSync(config, 'owner: bench\nprune: true\nmax_deletes: 1000\nmetrics_listen: null\n');
    /* BENCH_WRAP="strace -f -tt -o FILE" (or perf, ltrace...) runs imgrecon under a tool. */
    const wrap = (process.env.BENCH_WRAP || '').split(' ').filter(Boolean);
    const r = await run(wrap.length ? wrap[0] : path.join(o.build, 'imgrecon'),
        [...wrap.slice(1), ...(wrap.length ? [path.join(o.build, 'imgrecon')] : []), 'apply', '-c', config, '--auto-approve', '--endpoint', `http://127.0.0.1:${port}`, '-f', manifests,
         '--state-dir', path.join(dir, 'state'), '--rate-limit', `${o.calls}/${o.windowMs}ms`, '-q'], { env });
    if (r.code !== 0) throw new Error(`imgrecon apply exited ${r.code}: ${r.err.slice(-2000)}`);
    const jf = path.join(state, 'journal.jsonl');
    if (fs.existsSync(jf))
        learned.set(scName, fs.readFileSync(jf, 'utf8').split('\n').filter(l => l.includes('"action":"ImageAvailable"')).slice(-50));
    if (process.env.BENCH_DEBUG && learned.get(scName))
        console.error(`${scName}: build samples hi/lo ms: ` + learned.get(scName).map(l => { const e = JSON.parse(l); return `${e.build_ms}/${e.build_lo_ms || 0}`; }).join(' '));
    const af = path.join(state, 'account_ids');
    if (fs.existsSync(af)) accounts.set(scName, fs.readFileSync(af, 'utf8'));
    lastSpawnWall = r.wall0;
    return r.ms;
}

function sdkClient(port) {
    const Swas = require('@alicloud/swas-open20200601');
    const OpenApi = require('@alicloud/openapi-client');
    const cfg = new OpenApi.Config({ accessKeyId: KEY_ID, accessKeySecret: KEY_SECRET, protocol: 'http',
                                     endpoint: `127.0.0.1:${port}`, regionId: 'cn-hangzhou', readTimeout: 30000 });
    return { client: new Swas.default(cfg), Swas };
}

/* Executes one task with the SDK; returns the image id for creates. */
async function sdkTask(sdk, t, ids) {
    const { client, Swas } = sdk;
    const regionId = regionName(t.region);
    switch (t.action) {
    case 'CreateCustomImage': {
        const m = /-(\d+)$/.exec(t.name);
        const i = Number(m[1]) % t.servers;
        const r = await client.createCustomImage(new Swas.CreateCustomImageRequest({
            regionId, imageName: t.name, instanceId: serverId(t.region, i), systemSnapshotId: sysSnap(t.region, i),
            clientToken: `bench-${t.region}-${t.name}`, tag: [new Swas.CreateCustomImageRequestTag({ key: 'imgrecon/owner', value: 'bench' })] }));
        ids.set(`${t.region}/${t.name}`, r.body.imageId);
        return;
    }
    case 'ModifyImageShareStatus':
        await client.modifyImageShareStatus(new Swas.ModifyImageShareStatusRequest({
            regionId, imageId: ids.get(`${t.region}/${t.name}`), operation: t.op }));
        return;
    case 'DeleteCustomImage':
        await client.deleteCustomImage(new Swas.DeleteCustomImageRequest({ regionId, imageId: ids.get(`${t.region}/${t.name}`) }));
        return;
    default:
        throw new Error(t.action);
    }
}

async function sdkObserve(sdk, sc, ids, pace) {
    const { client, Swas } = sdk;
    for (const reg of sc.regions) {
        const r = await paced(pace, () => client.listCustomImages(new Swas.ListCustomImagesRequest({ regionId: regionName(reg.r), pageSize: 100 })));
        for (const img of r.body.customImages || []) ids.set(`${reg.r}/${img.name}`, img.imageId);
    }
}

const sleep = (ms) => new Promise(r => setTimeout(r, ms));

/* Retry on throttling: exponential backoff (100ms doubling, capped at 4s), as the SDKs' retry
 * options do; other errors are fatal. Both baselines retry a throttled call (the serial one
 * should never need to), so a throttle is counted rather than fatal. */
async function withRetry(fn) {
    let delay = 100;
    for (let attempt = 0; ; attempt++) {
        try { return await fn(); } catch (e) {
            const code = e.code || (e.data && e.data.Code) || '';
            if (!/Throttling/.test(code) || attempt > 60) throw e;
            await sleep(delay * (0.5 + Math.random() / 2));
            delay = Math.min(delay * 2, 4000);
        }
    }
}

/* One SDK call under the strategy's pacing: the serial strategy waits W/N after the previous
 * call's answer (a script's `sleep W/N` between calls: measured from the answer, so network
 * latency cannot put N+1 calls into one window at the server); burst does not wait. */
async function paced(pace, fn) {
    await pace();
    try { return await withRetry(fn); } finally { pace.end(); }
}

/* Waits until the image of a create is available: the serial script polls once per image. */
async function waitAvailable(sdk, t, ids, pace) {
    const { client, Swas } = sdk;
    for (let i = 0; i < 1000; i++) {
        const r = await paced(pace, () => client.listCustomImages(new Swas.ListCustomImagesRequest({
            regionId: regionName(t.region), imageIds: JSON.stringify([ids.get(`${t.region}/${t.name}`)]) })));
        const img = (r.body.customImages || [])[0];
        if (img && String(img.status) === '1') return;
        if (!pace.serial) await sleep(200);
    }
    throw new Error(`${t.name} never became available`);
}

async function runBaseline(kind, o, sc, port) {
    const sdk = sdkClient(port);
    const servers = new Map(sc.regions.map(r => [r.r, r.servers]));
    const tasks = taskGraph(sc, o.createDelayMs).map(t => ({ ...t, servers: servers.get(t.region) }));
    const ids = new Map();
    const gap = o.windowMs / o.calls;
    let last = 0;
    /* Serial pacing: one call every W/N across all actions, the simple safe script. */
    const pace = kind === 'serial'
        ? async () => { const wait = last + gap - Date.now(); if (wait > 0) await sleep(wait); }
        : async () => {};
    pace.end = () => { last = Date.now(); };
    pace.serial = kind === 'serial';
    const t0 = Date.now();
    await sdkObserve(sdk, sc, ids, pace);
    if (kind === 'serial') {
        /* A sensible script order: every unshare, then every delete, every create, every share
         * (so it does not sit polling one image before creating the next). It satisfies every
         * dependency of the task graph. */
        const phase = (t) => t.action === 'ModifyImageShareStatus' ? (t.deps.length ? 3 : 0)
                           : t.action === 'DeleteCustomImage' ? 1 : 2;
        const order = [...tasks].sort((a, b) => phase(a) - phase(b) || a.id - b.id);
        for (const t of order) {
            if (t.action === 'ModifyImageShareStatus' && t.op === 'Share' && t.deps.length)
                await waitAvailable(sdk, tasks[t.deps[0]], ids, pace);
            await paced(pace, () => sdkTask(sdk, t, ids));
        }
        for (const t of tasks) if (t.action === 'CreateCustomImage' && !t.share) await waitAvailable(sdk, t, ids, pace);
    } else {
        const done = new Map();
        const start = (t) => {
            if (done.has(t.id)) return done.get(t.id);
            const p = (async () => {
                await Promise.all(t.deps.map(d => start(tasks[d])));
                if (t.action === 'ModifyImageShareStatus' && t.op === 'Share' && t.deps.length)
                    await waitAvailable(sdk, tasks[t.deps[0]], ids, pace);
                await paced(pace, () => sdkTask(sdk, t, ids));
            })();
            done.set(t.id, p);
            return p;
        };
        await Promise.all(tasks.map(start));
        await Promise.all(tasks.filter(t => t.action === 'CreateCustomImage' && !t.share).map(t => waitAvailable(sdk, t, ids, pace)));
    }
    return Date.now() - t0;
}

/* ---------- driver ---------- */

function median(xs) { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; }

async function runOnce(o, sc, strategy, runIdx) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `imgrecon-bench-${sc.name}-`));
    const fixture = path.join(dir, 'fixture.yaml');
    const mdir = path.join(dir, 'manifests');
    fs.mkdirSync(mdir);
    fs.writeFileSync(fixture, fixtureYaml(sc));
    fs.writeFileSync(path.join(mdir, 'images.yaml'), manifestYaml(sc));
    const { emu, port, journal } = await startEmulator(o, dir, fixture);
    try {
        const ms = strategy === 'imgrecon' ? await runImgrecon(o, dir, port, mdir, sc.name) : await runBaseline(strategy, o, sc, port);
        const bad = await converged(port, sc);
        const lines = readJournal(journal);
        const t0 = lines.length ? Date.parse(lines[0].ts) : 0;
        if (process.env.BENCH_DEBUG && strategy === 'imgrecon' && lines.length)
            console.error(`${sc.name}: first call ${t0 - lastSpawnWall} ms after spawn, last call ${Date.parse(lines[lines.length - 1].ts) - lastSpawnWall} ms, exit ${ms.toFixed(0)} ms`);
        const timeline = lines.map(l => ({ t: (Date.parse(l.ts) - t0) / 1000, action: l.action, code: l.code }));
        if (process.env.BENCH_DEBUG) console.error(`${sc.name} ${strategy} ${ms.toFixed(0)}ms\n` + lines.map(l => `  ${((Date.parse(l.ts) - t0) / 1000).toFixed(3)} ${l.action} ${l.code || ''} ${(l.params && (l.params.ImageIds || '')).slice(0, 40)}`).join('\n'));
        return { ms, converged: bad === null, problem: bad, ...summarize(lines), timeline };
    } finally {
        emu.kill('SIGTERM');
        await new Promise(r => emu.on('close', r));
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/* Delete calls of either kind (single and batched). */
function deleteCalls(calls) { return (calls.DeleteCustomImage || 0) + (calls.DeleteCustomImages || 0); }

function fmtCalls(calls, min) {
    return Object.keys({ ...min, ...calls }).sort().map(a => `${a.replace('CustomImage', 'CI').replace('ModifyImageShareStatus', 'Share*')}=${calls[a] || 0}/${min[a] || 0}`).join(' ');
}

async function main() {
    const o = parseArgs(process.argv);
    const names = o.scenarios.length ? o.scenarios : ['create15', 'replace15', 'prune15', 'spread100', 'nochange1500'];
    if (o.baselines) {
        try { require.resolve('@alicloud/swas-open20200601'); } catch (e) {
            console.error('bench: installing the official SDK for the baselines (npm)...');
            const r = await run('npm', ['install', '--no-audit', '--no-fund', '--no-save', '--loglevel=error',
                                        '--prefix', path.join(ROOT, 'tests', 'conformance')], { timeoutMs: 600000 });
            if (r.code !== 0) { console.error('bench: npm unavailable, baselines skipped'); o.baselines = false; }
        }
    }
    console.log(`machine: ${os.cpus().length} x ${os.cpus()[0].model}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);
    console.log(`limits: ${o.calls}/${o.windowMs}ms per action, create delay ${o.createDelayMs}ms, ${o.runs} runs (median)\n`);
    const all = [];
    for (const name of names) {
        const sc = makeScenario(name);
        const lb = lowerBound(sc, o);
        const strategies = ['imgrecon', ...(o.baselines && !sc.nochange ? ['serial', 'burst'].filter(b => !o.only || o.only.includes(b)) : [])];
        console.log(`${name}: ${sc.desc}; lower bound ${(lb.ms / 1000).toFixed(2)}s`);
        for (const s of strategies) {
            const res = [];
            /* imgrecon's first run of a scenario starts without build-time samples (cold); it is
             * reported on its own and the measured runs come after it (learned). */
            const cold = s === 'imgrecon' && o.warmup ? await runOnce(o, sc, s, -1) : null;
            for (let i = 0; i < o.runs; i++) res.push(await runOnce(o, sc, s, i));
            const med = median(res.map(r => r.ms));
            const mid = res.find(r => r.ms === med) || res[0];
            const row = { scenario: name, strategy: s, median_s: med / 1000, bound_s: lb.ms / 1000,
                          ratio: med / Math.max(lb.ms, 1), runs_s: res.map(r => r.ms / 1000),
                          converged: res.every(r => r.converged), problems: res.map(r => r.problem).filter(Boolean),
                          calls: mid.calls, min_calls: lb.minCalls, polls: mid.polls, min_polls: lb.minPolls, looks: mid.looks, min_looks: lb.minLooks,
                          throttled: res.map(r => r.throttled), throttled_by_action: res.map(r => r.throttledBy),
                          cold_s: cold ? cold.ms / 1000 : null, cold_polls: cold ? cold.polls : null,
                          delete_calls: deleteCalls(mid.calls), min_delete_calls: deleteCalls(lb.minCalls), images_deleted: lb.deleted };
            all.push(row);
            console.log(`  ${s.padEnd(8)} ${row.median_s.toFixed(2).padStart(7)}s  ratio ${row.ratio.toFixed(2)}  throttled ${row.throttled.join('/')}  converged ${row.converged}  calls(used/min) ${fmtCalls(mid.calls, lb.minCalls)} (of which polls ${mid.polls}/${lb.minPolls}, looks ${mid.looks}/${lb.minLooks}; delete calls ${row.delete_calls}/${row.min_delete_calls} for ${lb.deleted} images)  runs ${row.runs_s.map(x => x.toFixed(2)).join('/')}${cold ? `  (cold first run ${row.cold_s.toFixed(2)}s, polls ${row.cold_polls})` : ''}`);
            if (o.timeline && name === 'replace15') fs.writeFileSync(path.join(o.timeline, `timeline-${s}.tsv`), mid.timeline.map(e => `${e.t}\t${e.action}\t${e.code || 'OK'}`).join('\n') + '\n');
        }
        console.log('');
    }
    if (o.json) fs.writeFileSync(o.json, JSON.stringify({ limits: { calls: o.calls, window_ms: o.windowMs, create_delay_ms: o.createDelayMs }, results: all }, null, 2));
    const bad = all.filter(r => !r.converged);
    if (bad.length) { console.error(`bench: ${bad.length} runs did not converge`); process.exit(1); }
}

main().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
