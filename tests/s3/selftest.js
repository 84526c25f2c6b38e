#!/usr/bin/env node
// tests/s3/selftest.js: the proxy's SigV4 signer against the example
// signatures AWS publishes for S3 ("Signature Calculations for the
// Authorization Header" and "Authenticating Requests: Using Query Parameters",
// examplebucket, 20130524T000000Z). Prints TAP-like lines; exits 1 on a mismatch.
'use strict';

const { sigv4, parseQuery } = require('./proxy.js');

const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const SCOPE = ['AKIAIOSFODNN7EXAMPLE', '20130524', 'us-east-1', 's3', 'aws4_request'];
const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const DATE = '20130524T000000Z';

// A stand-in for node's IncomingMessage: only headersDistinct is read.
function request(headers) {
  const distinct = {};
  for (const [k, v] of Object.entries(headers)) distinct[k] = [v];
  return { headersDistinct: distinct };
}

const cases = [
  {
    name: 'GET object with a Range header',
    method: 'GET', path: '/test.txt', query: '',
    headers: { host: 'examplebucket.s3.amazonaws.com', range: 'bytes=0-9', 'x-amz-content-sha256': EMPTY, 'x-amz-date': DATE },
    payload: EMPTY,
    want: 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
  },
  {
    name: 'PUT object: a $ in the path, a signed storage-class header',
    method: 'PUT', path: '/test%24file.text', query: '',
    headers: {
      date: 'Fri, 24 May 2013 00:00:00 GMT', host: 'examplebucket.s3.amazonaws.com',
      'x-amz-content-sha256': '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072',
      'x-amz-date': DATE, 'x-amz-storage-class': 'REDUCED_REDUNDANCY',
    },
    payload: '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072',
    want: '98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd',
  },
  {
    name: 'GET ?lifecycle (a parameter without a value)',
    method: 'GET', path: '/', query: 'lifecycle',
    headers: { host: 'examplebucket.s3.amazonaws.com', 'x-amz-content-sha256': EMPTY, 'x-amz-date': DATE },
    payload: EMPTY,
    want: 'fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543',
  },
  {
    name: 'GET bucket ?max-keys=2&prefix=J (sorted query)',
    method: 'GET', path: '/', query: 'prefix=J&max-keys=2',
    headers: { host: 'examplebucket.s3.amazonaws.com', 'x-amz-content-sha256': EMPTY, 'x-amz-date': DATE },
    payload: EMPTY,
    want: '34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7',
  },
  {
    name: 'presigned GET, 86400 s',
    method: 'GET', path: '/test.txt', presigned: true,
    query: 'X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=ignored',
    headers: { host: 'examplebucket.s3.amazonaws.com' },
    payload: 'UNSIGNED-PAYLOAD',
    want: 'aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404',
  },
];

let failed = 0;
cases.forEach((c, i) => {
  const { signature } = sigv4(SECRET, {
    method: c.method, rawPath: c.path, pairs: parseQuery(c.query), presigned: !!c.presigned,
    req: request(c.headers), signedHeaders: Object.keys(c.headers).sort(),
    payloadHash: c.payload, amzDate: DATE, scope: SCOPE,
  });
  if (signature === c.want) {
    console.log(`ok ${i + 1} - ${c.name}`);
  } else {
    failed++;
    console.log(`not ok ${i + 1} - ${c.name}\n#   got:      ${signature}\n#   expected: ${c.want}`);
  }
});
console.log(`1..${cases.length}`);
process.exit(failed ? 1 : 0);
