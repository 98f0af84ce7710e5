'use strict';
// Drives the newer SWAS operations through one official SDK against a running emulator with the
// demo fixture, --rate-limit 10/1s and --create-delay 200ms: TagResources, UntagResources,
// ListTagResources (NextToken paging), DeleteCustomImages (the 15-id limit, all or nothing for
// shared images, batches of three and of one), ListRegions and the account shares
// (Add/Remove/ListCustomImageShareAccount(s)), with their documented limits and errors.
// usage: node scenario_more.js PORT popcore-get|popcore-post|swas-v3|swas-v2
// Prints one line per check and "N passed, N failed"; exit status 0 only when all passed.

const { DEMO, Harness, waitFor } = require('./lib');
const { popCore, swasSdk } = require('./clients');

function makeClient(mode, port) {
  switch (mode) {
    case 'popcore-get': return popCore(port, 'GET', DEMO.secret);
    case 'popcore-post': return popCore(port, 'POST', DEMO.secret);
    case 'swas-v3': return swasSdk(port, 'v3', DEMO.secret);
    case 'swas-v2': return swasSdk(port, 'v2', DEMO.secret);
    default: throw new Error(`unknown mode ${mode}`);
  }
}

const keys = (n, prefix) => Array.from({ length: n }, (_, i) => ({ Key: `${prefix}${i + 1}`, Value: `v${i + 1}` }));

async function main() {
  const port = Number(process.argv[2]);
  const mode = process.argv[3];
  const h = new Harness(`${mode} more`, port);
  const c = makeClient(mode, port);
  const call = async (action, params) => {
    await h.pace(action);
    return c.call(action, params);
  };
  const R = DEMO.region;
  const CI = 'customimage';
  const list = (extra) => call('ListCustomImages', Object.assign({ RegionId: R, PageSize: 100 }, extra || {}));
  const item = async (id) => ((await list({ ImageIds: JSON.stringify([id]) })).CustomImages || [])[0] || {};
  const tagOf = (it, k) => ((it.Tags || []).find((t) => t.Key === k) || {}).Value;
  const tagRows = (res) => ((res.TagResources || {}).TagResource || []);

  await h.reset();

  // ---- TagResources / UntagResources: in place, visible in ListCustomImages at once ----
  let res = await call('TagResources', { RegionId: R, ResourceType: CI,
    ResourceId: [DEMO.legacy, DEMO.handMade], Tag: [{ Key: 'team', Value: 'web' }] });
  h.check('tag: RequestId', typeof res.RequestId === 'string' && res.RequestId.length > 0);
  h.check('tag: visible in ListCustomImages', tagOf(await item(DEMO.handMade), 'team') === 'web' &&
    tagOf(await item(DEMO.legacy), 'imgrecon/owner') === 'default');
  await call('TagResources', { RegionId: R, ResourceType: CI, ResourceId: [DEMO.handMade],
    Tag: [{ Key: 'team', Value: 'api' }] });
  h.check('tag: an existing key is overwritten', tagOf(await item(DEMO.handMade), 'team') === 'api');
  res = await call('UntagResources', { RegionId: R, ResourceType: CI, ResourceId: [DEMO.handMade], TagKey: ['team'] });
  h.check('untag: RequestId', typeof res.RequestId === 'string');
  h.check('untag: gone from ListCustomImages', tagOf(await item(DEMO.handMade), 'team') === undefined);
  await h.expectError('tag: reserved aliyun prefix', () => call('TagResources', { RegionId: R, ResourceType: CI,
    ResourceId: [DEMO.legacy], Tag: [{ Key: 'aliyun-x', Value: 'v' }] }), 'InvalidParam.TagKey', 400);
  await h.expectError('tag: reserved acs: prefix', () => call('TagResources', { RegionId: R, ResourceType: CI,
    ResourceId: [DEMO.legacy], Tag: [{ Key: 'acs:x', Value: 'v' }] }), 'InvalidParam.TagKey', 400);
  await h.expectError('tag: unknown ResourceType', () => call('TagResources', { RegionId: R, ResourceType: 'vm',
    ResourceId: [DEMO.legacy], Tag: [{ Key: 'k', Value: 'v' }] }), 'InvalidResourceType.NotFound', 400);
  await h.expectError('tag: unknown id', () => call('TagResources', { RegionId: R, ResourceType: CI,
    ResourceId: ['m-doesnotexist0000000'], Tag: [{ Key: 'k', Value: 'v' }] }), 'InvalidResourceId.NotFound', 404);
  const many = Array.from({ length: 51 }, (_, i) => `m-x${i}`);
  await h.expectError('tag: 51 resource ids', () => call('TagResources', { RegionId: R, ResourceType: CI,
    ResourceId: many, Tag: [{ Key: 'k', Value: 'v' }] }), 'NumberExceed.ResourceIds', 400);
  await h.expectError('tag: 21 tags on one resource', () => call('TagResources', { RegionId: R, ResourceType: CI,
    ResourceId: [DEMO.legacy], Tag: keys(20, 'q') }), 'OperationDenied.QuotaExceed', 400);

  // ---- ListTagResources with NextToken over 4 new images + hand-made, 20 tags each ----
  const made = [];
  for (let i = 0; i < 4; i++) {
    res = await call('CreateCustomImage', { RegionId: R, ImageName: `more-${i}`, InstanceId: DEMO.server,
      SystemSnapshotId: DEMO.sys1 });
    made.push(res.ImageId);
  }
  const ready = await waitFor(async () => {
    const r = await list({ ImageIds: JSON.stringify(made) });
    return (r.CustomImages || []).filter((x) => x.Status === '1').length === 4;
  }, 10000, 150);
  h.check('setup: four images available', !!ready);
  await call('TagResources', { RegionId: R, ResourceType: CI, ResourceId: made.concat([DEMO.handMade]), Tag: keys(20, 'k') });
  let token = '';
  let rows = [];
  let pages = 0;
  do {
    const p = { RegionId: R, ResourceType: CI };
    if (token) p.NextToken = token;
    res = await call('ListTagResources', p);
    rows = rows.concat(tagRows(res));
    token = res.NextToken || '';
    pages++;
  } while (token && pages < 10);
  h.check('list tags: 102 rows over NextToken pages', rows.length === 102 && pages === 3,
    `rows=${rows.length} pages=${pages}`);
  h.check('list tags: row shape', rows.every((r) => r.ResourceId && r.ResourceType === CI &&
    typeof r.TagKey === 'string' && typeof r.TagValue === 'string'), JSON.stringify(rows[0]));
  res = await call('ListTagResources', { RegionId: R, ResourceType: CI, ResourceId: [made[0]] });
  h.check('list tags: by ResourceId', tagRows(res).length === 20, tagRows(res).length);
  res = await call('ListTagResources', { RegionId: R, ResourceType: CI, Tag: [{ Key: 'team', Value: 'web' }] });
  h.check('list tags: by Tag', tagRows(res).length === 2 && tagRows(res).every((r) => r.ResourceId === DEMO.legacy),
    JSON.stringify(tagRows(res)));
  await h.expectError('list tags: bad NextToken', () => call('ListTagResources', { RegionId: R, ResourceType: CI,
    NextToken: 'garbage' }), 'InvalidParam.NextToken', 400);
  await call('UntagResources', { RegionId: R, ResourceType: CI, ResourceId: made, All: true });
  res = await call('ListTagResources', { RegionId: R, ResourceType: CI, ResourceId: made });
  h.check('untag: All=true', tagRows(res).length === 0, tagRows(res).length);

  // ---- account shares: InShareUser, listing, deletes refused while shared ----
  res = await call('AddCustomImageShareAccount', { RegionId: R, ImageId: DEMO.handMade, Account: [1111, 2222] });
  h.check('share account: RequestId', typeof res.RequestId === 'string');
  h.check('share account: InShareUser true', (await item(DEMO.handMade)).InShareUser === true);
  res = await call('ListCustomImageShareAccounts', { RegionId: R, ImageId: DEMO.handMade });
  const users = (res.ImageShareUsers || []).map((u) => String(u.UserId)).sort();
  h.check('share account: listed', Number(res.TotalCount) === 2 && JSON.stringify(users) === '["1111","2222"]' &&
    (res.ImageShareUsers || []).every((u) => /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/.test(u.SharedTime)), JSON.stringify(res));
  await h.expectError('share account: single delete refused', () => call('DeleteCustomImage',
    { RegionId: R, ImageId: DEMO.handMade }), 'CustomImageInShare', 400);
  await h.expectError('share account: batch delete refused', () => call('DeleteCustomImages',
    { RegionId: R, ImageIds: JSON.stringify([made[0], DEMO.handMade]) }), 'CustomImageInShare', 400);
  h.check('share account: the refused batch kept its other image', (await item(made[0])).ImageId === made[0]);
  await h.expectError('share account: bad account', () => call('AddCustomImageShareAccount',
    { RegionId: R, ImageId: DEMO.handMade, Account: [1234567890123456] }), 'InvalidParam.Account', 400);
  await h.expectError('share account: unknown image', () => call('AddCustomImageShareAccount',
    { RegionId: R, ImageId: 'm-doesnotexist0000000', Account: [1111] }), 'InvalidImageId.NotFound', 404);
  await call('RemoveCustomImageShareAccount', { RegionId: R, ImageId: DEMO.handMade, Account: [1111, 2222] });
  h.check('unshare account: InShareUser false', (await item(DEMO.handMade)).InShareUser === false);
  res = await call('ListCustomImageShareAccounts', { RegionId: R, ImageId: DEMO.handMade });
  h.check('unshare account: none listed', Number(res.TotalCount) === 0, JSON.stringify(res));

  // ---- DeleteCustomImages: the 15-id limit, all or nothing, batches of three and of one ----
  const fake = (n) => JSON.stringify(Array.from({ length: n }, (_, i) => `m-x${i}`));
  const left = async () => ((await list({ ImageIds: JSON.stringify(made) })).CustomImages || []).map((x) => x.ImageId).sort();
  await h.expectError('batch delete: 16 ids', () => call('DeleteCustomImages',
    { RegionId: R, ImageIds: fake(16) }), 'InvalidParam.ImageIds', 400);
  // 15 ids are within the limit: the ids themselves are looked at (and are unknown).
  await h.expectError('batch delete: 15 ids pass the count', () => call('DeleteCustomImages',
    { RegionId: R, ImageIds: fake(15) }), 'InvalidImageId.NotFound', 404);
  await h.expectError('batch delete: unknown id', () => call('DeleteCustomImages',
    { RegionId: R, ImageIds: JSON.stringify([made[0], 'm-doesnotexist0000000']) }), 'InvalidImageId.NotFound', 404);
  await h.expectError('batch delete: ECS-shared image', () => call('DeleteCustomImages',
    { RegionId: R, ImageIds: JSON.stringify([made[0], made[1], DEMO.legacy]) }), 'CustomImageInShare', 400);
  await call('AddCustomImageShareAccount', { RegionId: R, ImageId: made[3], Account: [3333] });
  await h.expectError('batch delete: account-shared image', () => call('DeleteCustomImages',
    { RegionId: R, ImageIds: JSON.stringify([made[2], made[3]]) }), 'CustomImageInShare', 400);
  h.check('batch delete: a refused batch deletes nothing', JSON.stringify(await left()) ===
    JSON.stringify(made.slice().sort()), JSON.stringify(await left()));
  await call('RemoveCustomImageShareAccount', { RegionId: R, ImageId: made[3], Account: [3333] });
  res = await call('DeleteCustomImages', { RegionId: R, ImageIds: JSON.stringify(made.slice(0, 3)) });
  h.check('batch delete: RequestId', typeof res.RequestId === 'string' && res.RequestId.length > 0);
  h.check('batch delete: exactly the three named are gone', JSON.stringify(await left()) === JSON.stringify([made[3]]),
    JSON.stringify(await left()));
  res = await call('DeleteCustomImages', { RegionId: R, ImageIds: JSON.stringify([made[3]]) });
  h.check('batch delete: a batch of one', (await left()).length === 0, JSON.stringify(await left()));
  res = await list();
  h.check('batch delete: the fixture images stay', Number(res.TotalCount) === 2 &&
    (res.CustomImages || []).some((x) => x.ImageId === DEMO.legacy) &&
    (res.CustomImages || []).some((x) => x.ImageId === DEMO.handMade), res.TotalCount);
  await h.expectError('batch delete: deleted ids are gone', () => call('DeleteCustomImages',
    { RegionId: R, ImageIds: JSON.stringify([made[0]]) }), 'InvalidImageId.NotFound', 404);

  // ---- ListRegions ----
  res = await call('ListRegions', { AcceptLanguage: 'en-US' });
  const hz = (res.Regions || []).find((r) => r.RegionId === R) || {};
  h.check('regions: the fixture regions with names and endpoints', (res.Regions || []).length === 2 &&
    hz.LocalName === 'China (Hangzhou)' && hz.RegionEndpoint === 'swas.cn-hangzhou.aliyuncs.com', JSON.stringify(res));

  process.exitCode = h.summary();
}

main().catch((err) => {
  console.log(`not ok - unexpected error: ${err && err.stack ? err.stack : err}`);
  console.log('0 passed, 1 failed');
  process.exitCode = 1;
});
