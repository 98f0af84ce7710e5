'use strict';
// The official @alicloud/credentials providers against the emulator's STS and instance metadata:
// RamRoleArn (AssumeRole signed by the SDK), OIDC (AssumeRoleWithOIDC with a token file) and the
// ECS RAM role (IMDSv2). The SDK hard-codes https for STS and 100.100.100.200 for metadata, so
// its request builder is pointed at the loopback emulator; everything else (signing, parsing of
// Credentials and Expiration) is the SDK's own. The credentials it gets must then sign SWAS and
// STS calls (pop-core with securityToken) that the emulator accepts.
// usage: node sts.js PORT
const fs = require('fs');
const os = require('os');
const path = require('path');
const RPCClient = require('@alicloud/pop-core').RPCClient;
const http = require('@alicloud/credentials/dist/src/providers/http');
const RamRoleArn = require('@alicloud/credentials/dist/src/providers/ram_role_arn').default;
const Oidc = require('@alicloud/credentials/dist/src/providers/oidc_role_arn').default;
const EcsRole = require('@alicloud/credentials/dist/src/providers/ecs_ram_role').default;
const StaticAK = require('@alicloud/credentials/dist/src/providers/static_ak').default;
const { Harness } = require('./lib');

const port = Number(process.argv[2]);
const h = new Harness('credentials', port);
const here = `127.0.0.1:${port}`;
const UID = '1234567890123456';
const ROLE = `acs:ram::${UID}:role/deployer`;

const origProtocol = http.RequestBuilder.prototype.withProtocol;
const origHost = http.RequestBuilder.prototype.withHost;
http.RequestBuilder.prototype.withProtocol = function () {
  return origProtocol.call(this, 'http');
};
http.RequestBuilder.prototype.withHost = function (host) {
  return origHost.call(this, host === '100.100.100.200' ? here : host);
};

const base = StaticAK.builder()
  .withAccessKeyId('LTAIemulatorDemoKey')
  .withAccessKeySecret('emulator-demo-secret')
  .build();

function looksTemporary(c) {
  return /^STS\./.test(c.accessKeyId) && c.accessKeySecret.length > 0 && c.securityToken.length > 0;
}

// A SWAS call and GetCallerIdentity signed by pop-core with the temporary credentials.
async function usable(name, c) {
  const opts = { accessKeyId: c.accessKeyId, accessKeySecret: c.accessKeySecret,
                 securityToken: c.securityToken, endpoint: `http://${here}` };
  const swas = new RPCClient(Object.assign({ apiVersion: '2020-06-01' }, opts));
  const sts = new RPCClient(Object.assign({ apiVersion: '2015-04-01' }, opts));
  try {
    await h.pace('ListCustomImages');
    const list = await swas.request('ListCustomImages', { RegionId: 'cn-hangzhou' },
                                    { method: 'POST', timeout: 10000 });
    h.check(`${name}: SWAS ListCustomImages with the STS key`, Array.isArray(list.CustomImages),
            JSON.stringify(list));
    await h.pace('GetCallerIdentity');
    const who = await sts.request('GetCallerIdentity', {}, { method: 'POST', timeout: 10000 });
    h.check(`${name}: GetCallerIdentity names the account`, who.AccountId === UID &&
            who.IdentityType === 'AssumedRoleUser', JSON.stringify(who));
  } catch (err) {
    h.check(`${name}: calls with the STS key`, false, `${err.code}: ${err.message}`);
  }
}

async function main() {
  // The scenarios before this one spent the account's 10/1s window (it is per account, so every
  // key and role shares it): start on a fresh window.
  await new Promise((r) => setTimeout(r, 1200));
  const arn = RamRoleArn.builder().withCredentialsProvider(base).withRoleArn(ROLE)
    .withRoleSessionName('conformance').withDurationSeconds(900).withStsEndpoint(here).build();
  try {
    const c = await arn.getCredentials();
    h.check('RamRoleArn: AssumeRole answer parsed by the SDK', looksTemporary(c), c.accessKeyId);
    await usable('RamRoleArn', c);
  } catch (err) {
    h.check('RamRoleArn: AssumeRole', false, err.message);
  }

  const bad = RamRoleArn.builder().withCredentialsProvider(base)
    .withRoleArn('acs:ram::999:role/x').withRoleSessionName('conformance')
    .withStsEndpoint(here).build();
  try {
    await bad.getCredentials();
    h.check('RamRoleArn: unknown account refused', false, 'no error');
  } catch (err) {
    h.check('RamRoleArn: unknown account refused with EntityNotExist.Role',
            /EntityNotExist\.Role/.test(err.message), err.message);
  }

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgrecon-oidc-'));
  const tokenFile = path.join(dir, 'token');
  fs.writeFileSync(tokenFile, 'eyJconformance-oidc-token');
  const oidc = Oidc.builder().withRoleArn(ROLE)
    .withOIDCProviderArn(`acs:ram::${UID}:oidc-provider/ack`).withOIDCTokenFilePath(tokenFile)
    .withRoleSessionName('conformance').withStsEndpoint(here).build();
  try {
    const c = await oidc.getCredentials();
    h.check('OIDC: AssumeRoleWithOIDC answer parsed by the SDK', looksTemporary(c), c.accessKeyId);
    await usable('OIDC', c);
  } catch (err) {
    h.check('OIDC: AssumeRoleWithOIDC', false, err.message);
  }
  fs.rmSync(dir, { recursive: true, force: true });

  const ecs = EcsRole.builder().withRoleName('ecsrole').withDisableIMDSv1(true).build();
  try {
    const c = await ecs.getCredentials();
    h.check('ECS RAM role: IMDSv2 token and credentials parsed by the SDK', looksTemporary(c),
            c.accessKeyId);
    await usable('ECS RAM role', c);
  } catch (err) {
    h.check('ECS RAM role (IMDSv2)', false, err.message);
  }
  if (typeof ecs.close === 'function') ecs.close();

  console.log(`${h.passed} passed, ${h.failed} failed`);
  process.exit(h.failed === 0 ? 0 : 1);
}

main().catch((err) => {
  console.log(`not ok - ${err.stack}`);
  process.exit(1);
});
