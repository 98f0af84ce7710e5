'use strict';
// Drives every SWAS operation (and ECS for pop-core) through one official SDK against a running
// emulator with the demo fixture, --rate-limit 10/1s and --create-delay 200ms.
// usage: node scenario.js PORT popcore-get|popcore-post|swas-v3|swas-v2
// Prints one line per check and "N passed, N failed"; exit status 0 only when all passed.

const { DEMO, Harness, sleep, waitFor } = require('./lib');
const { popCore, swasSdk } = require('./clients');

const ITEM_FIELDS = ['ImageId', 'Name', 'Description', 'Status', 'InShare', 'InShareUser',
  'InstanceId', 'InstanceName', 'RegionId', 'CreationTime', 'SystemSnapshotId',
  'SystemSnapshotName', 'DataSnapshotId', 'DataSnapshotName', 'ResourceGroupId', 'UserId',
  'OsType', 'SourceImageName', 'SourceImageVersion', 'RequiredSystemDiskSize',
  'RequiredDataDiskSize', 'CreateInstances', 'Tags'];

function makeClient(mode, port, secret) {
  switch (mode) {
    case 'popcore-get': return popCore(port, 'GET', secret);
    case 'popcore-post': return popCore(port, 'POST', secret);
    case 'swas-v3': return swasSdk(port, 'v3', secret);
    case 'swas-v2': return swasSdk(port, 'v2', secret);
    default: throw new Error(`unknown mode ${mode}`);
  }
}

async function main() {
  const port = Number(process.argv[2]);
  const mode = process.argv[3];
  const h = new Harness(mode, port);
  const c = makeClient(mode, port, DEMO.secret);
  const call = async (action, params) => {
    await h.pace(action);
    return c.call(action, params);
  };
  const R = DEMO.region;
  const list = (extra) => call('ListCustomImages', Object.assign({ RegionId: R }, extra || {}));
  const ids = (res) => (res.CustomImages || []).map((i) => i.ImageId).sort();

  await h.reset();

  // ---- ListCustomImages: shape, counters as strings, every filter, paging ----
  let res = await list({ PageSize: 100 });
  h.check('list: RequestId present', typeof res.RequestId === 'string' && res.RequestId.length > 0);
  h.check('list: TotalCount/PageSize/PageNumber are strings',
    res.TotalCount === '2' && res.PageSize === '100' && res.PageNumber === '1',
    JSON.stringify([res.TotalCount, res.PageSize, res.PageNumber]));
  h.check('list: both demo images', JSON.stringify(ids(res)) === JSON.stringify([DEMO.legacy, DEMO.handMade].sort()),
    JSON.stringify(ids(res)));
  const legacy = (res.CustomImages || []).find((i) => i.ImageId === DEMO.legacy) || {};
  const missing = ITEM_FIELDS.filter((f) => !(f in legacy));
  h.check('list: every documented item field', missing.length === 0, missing.join(','));
  h.check('list: legacy-web shared, available, owner tag',
    legacy.InShare === true && legacy.Status === '1' &&
    (legacy.Tags || []).some((t) => t.Key === 'imgrecon/owner' && t.Value === 'default'),
    JSON.stringify(legacy));
  res = await list({ ImageIds: JSON.stringify([DEMO.legacy]) });
  h.check('list: ImageIds JSON array', JSON.stringify(ids(res)) === JSON.stringify([DEMO.legacy]));
  res = await list({ ImageNames: JSON.stringify(['hand-made']) });
  h.check('list: ImageNames JSON array', JSON.stringify(ids(res)) === JSON.stringify([DEMO.handMade]));
  res = await list({ Share: true });
  h.check('list: Share=true', JSON.stringify(ids(res)) === JSON.stringify([DEMO.legacy]));
  res = await list({ Share: false });
  h.check('list: Share=false', JSON.stringify(ids(res)) === JSON.stringify([DEMO.handMade]));
  res = await list({ Tag: [{ Key: 'imgrecon/owner', Value: 'default' }] });
  h.check('list: Tag filter', JSON.stringify(ids(res)) === JSON.stringify([DEMO.legacy]));
  res = await list({ InstanceId: DEMO.server2 });
  h.check('list: InstanceId filter', JSON.stringify(ids(res)) === JSON.stringify([DEMO.handMade]));
  res = await list({ SystemSnapshotId: DEMO.sys1 });
  h.check('list: SystemSnapshotId filter', JSON.stringify(ids(res)) === JSON.stringify([DEMO.legacy]));
  const p1 = await list({ PageSize: 1, PageNumber: 1 });
  const p2 = await list({ PageSize: 1, PageNumber: 2 });
  h.check('list: paging', p1.TotalCount === '2' && p2.PageNumber === '2' &&
    (p1.CustomImages || []).length === 1 && (p2.CustomImages || []).length === 1 &&
    p1.CustomImages[0].ImageId !== p2.CustomImages[0].ImageId);
  await h.expectError('list: PageSize 101 rejected', () => list({ PageSize: 101 }),
    'InvalidParam.PageSize', 400);

  // ---- CreateCustomImage: success, ClientToken, async status, validation ----
  const name = `conf-${mode}`;
  const token = `tok-${mode}-${Date.now()}`;
  const createParams = {
    RegionId: R, ImageName: name, InstanceId: DEMO.server, SystemSnapshotId: DEMO.sys2,
    DataSnapshotId: DEMO.data1, Description: 'conformance', ClientToken: token,
    Tag: [{ Key: 'team', Value: 'web' }, { Key: 'imgrecon/owner', Value: 'default' }],
  };
  res = await call('CreateCustomImage', createParams);
  const imageId = res.ImageId;
  h.check('create: ImageId m- + 20 lowercase alnum', /^m-[a-z0-9]{20}$/.test(imageId || ''), imageId);
  res = await call('CreateCustomImage', createParams);
  h.check('create: same ClientToken -> same ImageId', res.ImageId === imageId, res.ImageId);
  res = await list({ ImageIds: JSON.stringify([imageId]) });
  h.check('create: listed once, creating or available', res.TotalCount === '1' &&
    ['4', '1'].includes(res.CustomImages[0].Status), JSON.stringify(res.CustomImages));
  const ready = await waitFor(async () => {
    const r = await list({ ImageIds: JSON.stringify([imageId]) });
    return r.CustomImages && r.CustomImages[0] && r.CustomImages[0].Status === '1' ? r : null;
  }, 10000, 150);
  h.check('create: status becomes "1"', !!ready);
  const item = ready ? ready.CustomImages[0] : {};
  h.check('create: fields as requested', item.Name === name && item.InstanceId === DEMO.server &&
    item.SystemSnapshotId === DEMO.sys2 && item.DataSnapshotId === DEMO.data1 &&
    item.Description === 'conformance' && item.InShare === false &&
    (item.Tags || []).some((t) => t.Key === 'team' && t.Value === 'web'), JSON.stringify(item));
  const base = { RegionId: R, InstanceId: DEMO.server, SystemSnapshotId: DEMO.sys1 };
  await h.expectError('create: ImageNameAlreadyExist',
    () => call('CreateCustomImage', Object.assign({}, base, { ImageName: name })), 'ImageNameAlreadyExist', 400);
  await h.expectError('create: InvalidParam.IllegalImageName',
    () => call('CreateCustomImage', Object.assign({}, base, { ImageName: '-bad name' })), 'InvalidParam.IllegalImageName', 400);
  await h.expectError('create: data snapshot as system -> SystemSnapshotIdNotSupport',
    () => call('CreateCustomImage', Object.assign({}, base, { ImageName: 'x-1', SystemSnapshotId: DEMO.data1 })),
    'InvalidParam.SystemSnapshotIdNotSupport', 400);
  await h.expectError('create: other server snapshot -> SystemSnapshotIdNotFound',
    () => call('CreateCustomImage', Object.assign({}, base, { ImageName: 'x-2', SystemSnapshotId: DEMO.sys3 })),
    'InvalidParam.SystemSnapshotIdNotFound', 400);
  await h.expectError('create: InvalidInstanceId.NotFound',
    () => call('CreateCustomImage', Object.assign({}, base, { ImageName: 'x-3', InstanceId: 'nosuchserver' })),
    'InvalidInstanceId.NotFound', 404);
  await h.expectError('create: bad tag key', () => call('CreateCustomImage',
    Object.assign({}, base, { ImageName: 'x-4', Tag: [{ Key: 'acs:x', Value: 'v' }] })), 'InvalidParam.TagKey', 400);

  // ---- share, delete in share, unshare, delete ----
  res = await call('ModifyImageShareStatus', { RegionId: R, ImageId: imageId, Operation: 'Share' });
  h.check('share: RequestId', typeof res.RequestId === 'string');
  res = await list({ Share: true });
  h.check('share: listed as shared', ids(res).includes(imageId));
  await h.expectError('delete: CustomImageInShare',
    () => call('DeleteCustomImage', { RegionId: R, ImageId: imageId }), 'CustomImageInShare', 400);
  await h.expectError('share: InvalidParam.OperationIllegal',
    () => call('ModifyImageShareStatus', { RegionId: R, ImageId: imageId, Operation: 'Publish' }),
    'InvalidParam.OperationIllegal', 400);
  await h.expectError('share: InvalidImageId.NotFound',
    () => call('ModifyImageShareStatus', { RegionId: R, ImageId: 'm-doesnotexist0000000', Operation: 'Share' }),
    'InvalidImageId.NotFound', 404);
  res = await call('ModifyImageShareStatus', { RegionId: R, ImageId: imageId, Operation: 'UnShare' });
  res = await list({ ImageIds: JSON.stringify([imageId]) });
  h.check('unshare: InShare false', res.CustomImages && res.CustomImages[0].InShare === false);
  res = await call('DeleteCustomImage', { RegionId: R, ImageId: imageId });
  h.check('delete: RequestId', typeof res.RequestId === 'string');
  res = await list({ ImageIds: JSON.stringify([imageId]) });
  h.check('delete: gone from the list', res.TotalCount === '0');
  await h.expectError('delete: InvalidImageId.NotFound',
    () => call('DeleteCustomImage', { RegionId: R, ImageId: imageId }), 'InvalidImageId.NotFound', 404);

  // ---- quota: min(3 x 2 servers, 15) = 6 in cn-hangzhou, 2 exist ----
  for (let i = 0; i < 4; i++) {
    await call('CreateCustomImage', Object.assign({}, base, { ImageName: `quota-${i}` }));
  }
  await h.expectError('create: CustomImageQuotaLimit',
    () => call('CreateCustomImage', Object.assign({}, base, { ImageName: 'quota-4' })), 'CustomImageQuotaLimit', 400);

  // ---- ECS through pop-core ----
  if (mode.startsWith('popcore')) {
    const ecs = popCore(port, mode === 'popcore-get' ? 'GET' : 'POST', DEMO.secret, '2014-05-26');
    const ecall = async (a, p) => { await h.pace(a); return ecs.call(a, p); };
    res = await ecall('DescribeImages', { RegionId: R, ImageOwnerAlias: 'self' });
    h.check('ecs describe: counters numbers, Images.Image[]', res.TotalCount === 2 && res.PageNumber === 1 &&
      res.PageSize === 10 && Array.isArray(res.Images && res.Images.Image) && res.Images.Image.length === 2,
      JSON.stringify(res));
    await h.expectError('ecs delete: ImageUsingByInstance',
      () => ecall('DeleteImage', { RegionId: R, ImageId: DEMO.ecsUsed }), 'ImageUsingByInstance', 403);
    await h.expectError('ecs delete: DryRunOperation',
      () => ecall('DeleteImage', { RegionId: R, ImageId: DEMO.ecsUnused, DryRun: true }), 'DryRunOperation', 400);
    res = await ecall('DeleteImage', { RegionId: R, ImageId: DEMO.ecsUnused });
    h.check('ecs delete: ok', typeof res.RequestId === 'string');
    res = await ecall('DeleteImage', { RegionId: R, ImageId: DEMO.ecsUsed, Force: true });
    h.check('ecs delete: Force', typeof res.RequestId === 'string');
    await h.expectError('ecs delete: InvalidImageId.NotFound',
      () => ecall('DeleteImage', { RegionId: R, ImageId: DEMO.ecsUnused }), 'InvalidImageId.NotFound', 404);
  }

  // ---- a wrong secret ----
  const bad = makeClient(mode, port, 'not-the-secret');
  await h.pace('ListCustomImages');
  const err = await h.expectError('auth: wrong secret -> SignatureDoesNotMatch',
    () => bad.call('ListCustomImages', { RegionId: R }), 'SignatureDoesNotMatch', 400);
  const msg = err ? String((err.data && err.data.Message) || err.message) : '';
  h.check('auth: message carries the server string to sign', msg.includes('server string to sign is:'), msg);

  // ---- the 11th call inside a window ----
  await sleep(1300);
  const burst = await Promise.allSettled(Array.from({ length: 11 }, () => c.call('ListCustomImages', { RegionId: R })));
  const okCount = burst.filter((b) => b.status === 'fulfilled').length;
  const throttled = burst.filter((b) => b.status === 'rejected' && b.reason.code === 'Throttling.User' &&
    (b.reason.statusCode === undefined || b.reason.statusCode === 400)).length;
  h.check('throttle: 11 calls in a window -> Throttling.User', okCount <= 10 && throttled >= 1 &&
    okCount + throttled === 11, `ok=${okCount} throttled=${throttled} ` +
    burst.filter((b) => b.status === 'rejected').map((b) => b.reason.code).join(','));

  process.exitCode = h.summary();
}

main().catch((err) => {
  console.log(`not ok - unexpected error: ${err && err.stack ? err.stack : err}`);
  console.log('0 passed, 1 failed');
  process.exitCode = 1;
});
