'use strict';
// Adapters that give every official SDK the same shape for the scenario: call(action, params)
// with the API's own parameter names (Tag as [{Key, Value}]) returns the response body with the
// API's own field names, or throws an error with .code and .statusCode.

const RPCClient = require('@alicloud/pop-core').RPCClient;
const Swas = require('@alicloud/swas-open20200601');
const { $OpenApiUtil } = require('@alicloud/openapi-core');

// @alicloud/pop-core (signature V1); method GET (all in the query) or POST (form body).
function popCore(port, method, secret, apiVersion) {
  const client = new RPCClient({
    accessKeyId: 'LTAIemulatorDemoKey',
    accessKeySecret: secret,
    endpoint: `http://127.0.0.1:${port}`,
    apiVersion: apiVersion || '2020-06-01',
  });
  return {
    name: `pop-core ${method}`,
    async call(action, params) {
      const p = Object.assign({}, params);
      for (const k of ['Share', 'All']) if (typeof p[k] === 'boolean') p[k] = String(p[k]);
      try {
        return await client.request(action, p, { method, timeout: 10000 });
      } catch (err) {
        if (err.entry && err.entry.response) err.statusCode = err.entry.response.statusCode;
        throw err;
      }
    },
  };
}

// The typed methods of @alicloud/swas-open20200601: V3 (ACS3-HMAC-SHA256) by default, V1 with
// signatureAlgorithm 'v2'. An http loopback endpoint needs protocol 'http' and the endpoint as
// host:port (the SDK builds the URL and the signed host header from it).
function swasSdk(port, algorithm, secret) {
  const cfg = {
    accessKeyId: 'LTAIemulatorDemoKey',
    accessKeySecret: secret,
    endpoint: `127.0.0.1:${port}`,
    protocol: 'http',
    regionId: 'cn-hangzhou',
    readTimeout: 10000,
    connectTimeout: 5000,
  };
  if (algorithm === 'v2') cfg.signatureAlgorithm = 'v2';
  const client = new Swas.default(new $OpenApiUtil.Config(cfg));
  const lcfirst = (s) => s[0].toLowerCase() + s.slice(1);
  const build = (action, params) => {
    const m = {};
    for (const [k, v] of Object.entries(params)) {
      if (k === 'Tag') {
        const Tag = Swas[`${action}RequestTag`];
        m.tag = v.map((t) => new Tag({ key: t.Key, value: t.Value }));
      } else if (k === 'PageSize' || k === 'PageNumber') {
        m[lcfirst(k)] = Number(v);
      } else {
        m[lcfirst(k)] = v;
      }
    }
    return new Swas[`${action}Request`](m);
  };
  return {
    name: `swas-open20200601 ${algorithm}`,
    async call(action, params) {
      const res = await client[lcfirst(action)](build(action, params));
      return res.body.toMap();
    },
  };
}

module.exports = { popCore, swasSdk };
