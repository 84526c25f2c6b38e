#!/usr/bin/env node
// tests/s3/proxy.js: the strict front of ferry's S3 test world.
//
// s3rver 3.7.1 stores objects faithfully but never checks a SigV4 signature,
// Content-MD5 or R2's part rules, and answers 405 to ListParts and Abort. This
// reverse proxy sits in front of it and does what R2/S3 would:
//   - verifies every SigV4 signature (header and presigned form) with its own
//     signer, independent of ferry's and botocore's, and answers 403 in S3's
//     words on a mismatch; checks x-amz-content-sha256 and Content-MD5;
//   - tracks multipart uploads itself: ListParts, Abort, ListMultipartUploads,
//     R2's rules at Complete, and the md5-of-md5s-N ETag of the result;
//   - forwards the rest to s3rver unsigned (s3rver lets those through);
//   - arms faults at run time (POST /__proxy/fault?name=...&count=N);
//   - logs one line per request, without signatures or secrets.
//
// A body is spooled to disk while it arrives (memory stays small whatever the
// size) and reaches s3rver only once it is whole and its digests check out:
// s3rver writes objects in place, so a cut or bad upload must never reach it,
// just as S3 keeps the old object when an upload fails.
//
// Usage: node proxy.js --upstream http://127.0.0.1:PORT --credentials FILE
//          --port-file FILE --log FILE --spool DIR [--data-dir DIR]
//          [--region us-east-1[,auto...]] [--min-part-size 5242880]
// FILE for --credentials holds "ACCESS_KEY_ID SECRET" lines. The proxy listens
// on 127.0.0.1, port 0, and writes the port it got to --port-file.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');

const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;
const MAX_SKEW_MS = 15 * 60 * 1000;
const MAX_PARTS = 10000;
const MAX_PUT_BYTES = 5 * 1024 * 1024 * 1024; // one PutObject or part, S3 and R2
// Query parameters that carry a presigned request's authentication.
const AUTH_QUERY = new Set([
  'x-amz-algorithm', 'x-amz-credential', 'x-amz-date', 'x-amz-expires',
  'x-amz-signedheaders', 'x-amz-signature', 'x-amz-security-token',
]);
// Request headers that describe this hop only, never forwarded.
const HOP_HEADERS = new Set([
  'authorization', 'host', 'expect', 'connection', 'keep-alive', 'te',
  'transfer-encoding', 'upgrade', 'proxy-authorization', 'content-length',
  'x-amz-content-sha256',
]);
const FAULTS = ['drop_part', 'error_part', 'slow'];

// --- options -------------------------------------------------------------------

function parseArgs(argv) {
  const opts = { region: 'us-east-1', minPartSize: 5 * 1024 * 1024 };
  const names = {
    '--upstream': 'upstream', '--credentials': 'credentials',
    '--port-file': 'portFile', '--log': 'log', '--spool': 'spool',
    '--data-dir': 'dataDir', '--region': 'region',
    '--min-part-size': 'minPartSize',
  };
  for (let i = 2; i < argv.length; i += 2) {
    const name = names[argv[i]];
    if (!name || i + 1 >= argv.length) {
      throw new Error(`unknown or incomplete option ${argv[i]}`);
    }
    opts[name] = argv[i + 1];
  }
  for (const need of ['upstream', 'credentials', 'portFile', 'log', 'spool']) {
    if (!opts[need]) throw new Error(`missing --${need.replace(/[A-Z]/g, c => '-' + c.toLowerCase())}`);
  }
  opts.minPartSize = Number(opts.minPartSize);
  opts.regions = opts.region.split(',');
  const up = new URL(opts.upstream);
  opts.upHost = up.hostname;
  opts.upPort = Number(up.port);
  opts.keys = new Map();
  for (const line of fs.readFileSync(opts.credentials, 'utf8').split('\n')) {
    const [id, secret] = line.trim().split(/\s+/);
    if (id && secret) opts.keys.set(id, secret);
  }
  if (opts.keys.size === 0) throw new Error(`${opts.credentials}: no "ACCESS_KEY_ID SECRET" line`);
  return opts;
}

// --- S3 answers ------------------------------------------------------------------

function xmlEscape(s) {
  return String(s).replace(/[<>&'"]/g, c => ({
    '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;',
  })[c]);
}

function xmlUnescape(s) {
  return s.replace(/&(lt|gt|amp|apos|quot|#[0-9]+|#x[0-9a-fA-F]+);/g, (m, e) => {
    const named = { lt: '<', gt: '>', amp: '&', apos: "'", quot: '"' }[e];
    if (named) return named;
    return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
  });
}

// xmlDoc('Root', {A: 1, B: [{C: 2}, {C: 3}]}) -> <Root><A>1</A><B><C>2</C></B>...
function xmlBody(obj) {
  let out = '';
  for (const [name, value] of Object.entries(obj)) {
    if (value === undefined || value === null) continue;
    for (const v of Array.isArray(value) ? value : [value]) {
      out += typeof v === 'object'
        ? `<${name}>${xmlBody(v)}</${name}>`
        : `<${name}>${xmlEscape(v)}</${name}>`;
    }
  }
  return out;
}

function xmlDoc(root, obj, ns = true) {
  const attr = ns ? ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"' : '';
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root}${attr}>${xmlBody(obj)}</${root}>`;
}

class S3Error extends Error {
  constructor(status, code, message, detail = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

// --- SigV4, as AWS defines it ----------------------------------------------------

function sha256hex(data) {
  return crypto.createHash('sha256').update(data).digest('hex');
}

function hmac(key, data) {
  return crypto.createHmac('sha256', key).update(data).digest();
}

// Percent-decoding to bytes; a '%' not followed by two hex digits stays as is.
function pctDecode(s) {
  const bytes = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '%' && /^[0-9A-Fa-f]{2}$/.test(s.slice(i + 1, i + 3))) {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(s[i], 'utf8'));
    }
  }
  return Buffer.from(bytes);
}

// RFC 3986 encoding: everything but A-Z a-z 0-9 - _ . ~ (and '/' in paths).
function uriEncode(bytes, keepSlash) {
  let out = '';
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-_.~]/.test(c) || (keepSlash && c === '/')) {
      out += c;
    } else {
      out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
    }
  }
  return out;
}

// [{name, value, rawName}] from a raw query string, names and values decoded.
function parseQuery(raw) {
  const pairs = [];
  for (const piece of raw.split('&')) {
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    const rawName = eq < 0 ? piece : piece.slice(0, eq);
    const rawValue = eq < 0 ? '' : piece.slice(eq + 1);
    pairs.push({
      rawName, raw: piece,
      name: pctDecode(rawName).toString('utf8'),
      value: pctDecode(rawValue).toString('utf8'),
      nameBytes: pctDecode(rawName), valueBytes: pctDecode(rawValue),
    });
  }
  return pairs;
}

function canonicalQuery(pairs, skipSignature) {
  return pairs
    .filter(p => !(skipSignature && p.name === 'X-Amz-Signature'))
    .map(p => [uriEncode(p.nameBytes, false), uriEncode(p.valueBytes, false)])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([n, v]) => `${n}=${v}`)
    .join('&');
}

function canonicalHeaderValue(req, name) {
  const values = req.headersDistinct[name];
  if (!values) return null;
  return values.map(v => v.trim().replace(/\s+/g, ' ')).join(',');
}

// Returns {canonicalRequest, stringToSign, signature} for the given parts.
function sigv4(secret, { method, rawPath, pairs, presigned, req, signedHeaders,
  payloadHash, amzDate, scope }) {
  const headerLines = signedHeaders.map(h => `${h}:${canonicalHeaderValue(req, h)}\n`).join('');
  const canonicalRequest = [
    method,
    uriEncode(pctDecode(rawPath || '/'), true),
    canonicalQuery(pairs, presigned),
    headerLines,
    signedHeaders.join(';'),
    payloadHash,
  ].join('\n');
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope.slice(1).join('/'), sha256hex(canonicalRequest)].join('\n');
  let key = hmac('AWS4' + secret, scope[1]);
  for (const part of scope.slice(2)) key = hmac(key, part);
  return { canonicalRequest, stringToSign, signature: hmac(key, stringToSign).toString('hex') };
}

function parseAmzDate(s) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s || '');
  if (!m) return null;
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
}

// Checks the request's authentication; returns {payloadHash} (the hash the
// client signed, which the body must match when it is hex) or throws S3Error.
function authenticate(opts, req, rawPath, pairs) {
  const auth = req.headers.authorization;
  const q = {};
  for (const p of pairs) q[p.name] = p.value;
  const presigned = 'X-Amz-Algorithm' in q;
  if (auth !== undefined && presigned) {
    throw new S3Error(400, 'InvalidArgument', 'Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified');
  }
  if (auth === undefined && !presigned) {
    throw new S3Error(403, 'AccessDenied', 'Access Denied');
  }

  let credential, signedHeaderList, given, amzDate, payloadHash;
  if (presigned) {
    for (const need of ['X-Amz-Credential', 'X-Amz-Date', 'X-Amz-Expires', 'X-Amz-SignedHeaders', 'X-Amz-Signature']) {
      if (!(need in q)) {
        throw new S3Error(400, 'AuthorizationQueryParametersError', `Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters (missing ${need}).`);
      }
    }
    if (q['X-Amz-Algorithm'] !== 'AWS4-HMAC-SHA256') {
      throw new S3Error(400, 'AuthorizationQueryParametersError', 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"');
    }
    credential = q['X-Amz-Credential'];
    signedHeaderList = q['X-Amz-SignedHeaders'];
    given = q['X-Amz-Signature'];
    amzDate = q['X-Amz-Date'];
    payloadHash = req.headers['x-amz-content-sha256'] || 'UNSIGNED-PAYLOAD';
  } else {
    const m = /^AWS4-HMAC-SHA256\s+(.*)$/.exec(auth);
    if (!m) {
      throw new S3Error(400, 'InvalidRequest', 'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.');
    }
    const fields = {};
    for (const f of m[1].split(',')) {
      const eq = f.indexOf('=');
      if (eq > 0) fields[f.slice(0, eq).trim()] = f.slice(eq + 1).trim();
    }
    if (!fields.Credential || !fields.SignedHeaders || !fields.Signature) {
      throw new S3Error(400, 'AuthorizationHeaderMalformed', 'The authorization header is malformed; it needs Credential, SignedHeaders and Signature.');
    }
    credential = fields.Credential;
    signedHeaderList = fields.SignedHeaders;
    given = fields.Signature;
    amzDate = req.headers['x-amz-date'];
    if (!amzDate) {
      throw new S3Error(403, 'AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
    }
    payloadHash = req.headers['x-amz-content-sha256'];
    if (!payloadHash) {
      throw new S3Error(400, 'InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
    }
  }

  const scope = credential.split('/');
  if (scope.length !== 5 || scope[4] !== 'aws4_request' || scope[3] !== 's3') {
    throw new S3Error(400, 'AuthorizationHeaderMalformed', `The authorization header is malformed; the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".`);
  }
  const secret = opts.keys.get(scope[0]);
  if (secret === undefined) {
    throw new S3Error(403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.', { AWSAccessKeyId: scope[0] });
  }
  const when = parseAmzDate(amzDate);
  if (when === null) {
    throw new S3Error(400, 'AuthorizationHeaderMalformed', `X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd'T'HHmmss'Z'"`);
  }
  if (amzDate.slice(0, 8) !== scope[1]) {
    throw new S3Error(400, 'AuthorizationHeaderMalformed', `The authorization header is malformed; Invalid credential date "${scope[1]}". This date is not the same as X-Amz-Date: "${amzDate.slice(0, 8)}".`);
  }
  // S3 wants its own region; R2 takes "auto" and us-east-1 (--region us-east-1,auto).
  if (!opts.regions.includes(scope[2])) {
    throw new S3Error(400, 'AuthorizationHeaderMalformed', `The authorization header is malformed; the region '${scope[2]}' is wrong; expecting '${opts.regions[0]}'`, { Region: opts.regions[0] });
  }
  const now = Date.now();
  if (presigned) {
    const expires = q['X-Amz-Expires'];
    if (!/^\d+$/.test(expires)) {
      throw new S3Error(400, 'AuthorizationQueryParametersError', 'X-Amz-Expires should be a number');
    }
    if (Number(expires) > MAX_PRESIGN_SECONDS) {
      throw new S3Error(400, 'AuthorizationQueryParametersError', `X-Amz-Expires must be less than a week (in seconds) that is; ${MAX_PRESIGN_SECONDS}`);
    }
    if (now > when + Number(expires) * 1000) {
      throw new S3Error(403, 'AccessDenied', 'Request has expired', {
        'X-Amz-Expires': expires,
        Expires: new Date(when + Number(expires) * 1000).toISOString(),
        ServerTime: new Date(now).toISOString(),
      });
    }
    if (when - now > MAX_SKEW_MS) {
      throw new S3Error(403, 'AccessDenied', 'Request is not valid yet');
    }
  } else if (Math.abs(now - when) > MAX_SKEW_MS) {
    throw new S3Error(403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.', {
      RequestTime: amzDate, ServerTime: new Date(now).toISOString(), MaxAllowedSkewMilliseconds: MAX_SKEW_MS,
    });
  }

  const signedHeaders = signedHeaderList.split(';');
  const sorted = [...signedHeaders].sort();
  if (signedHeaders.some((h, i) => h !== h.toLowerCase() || h !== sorted[i] || h === '')) {
    throw new S3Error(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method. (SignedHeaders must be lower case and sorted.)');
  }
  if (!signedHeaders.includes('host')) {
    throw new S3Error(400, 'AuthorizationHeaderMalformed', "The authorization header is malformed; 'Host' must be a signed header.");
  }
  for (const h of signedHeaders) {
    if (req.headersDistinct[h] === undefined) {
      throw new S3Error(403, 'SignatureDoesNotMatch', `The request signature we calculated does not match the signature you provided. Check your key and signing method. (Signed header ${h} is not in the request.)`);
    }
  }
  // S3 refuses x-amz-* headers that are sent but not signed.
  const unsigned = Object.keys(req.headers).filter(h => h.startsWith('x-amz-') && !signedHeaders.includes(h));
  if (unsigned.length > 0) {
    throw new S3Error(403, 'AccessDenied', 'There were headers present in the request which were not signed', {
      HeadersNotSigned: unsigned.join(', '),
    });
  }

  const { canonicalRequest, stringToSign, signature } = sigv4(secret, {
    method: req.method, rawPath, pairs, presigned, req, signedHeaders,
    payloadHash, amzDate, scope,
  });
  const a = Buffer.from(signature);
  const b = Buffer.from(String(given));
  if (a.length !== b.length || !crypto.timingSafeEqual(a, b)) {
    throw new S3Error(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.', {
      AWSAccessKeyId: scope[0], StringToSign: stringToSign, CanonicalRequest: canonicalRequest,
    });
  }
  if (payloadHash.startsWith('STREAMING-')) {
    throw new S3Error(501, 'NotImplemented', `x-amz-content-sha256 ${payloadHash} (aws-chunked bodies) is not supported by this test server; sign the payload's SHA-256 instead.`);
  }
  if (payloadHash !== 'UNSIGNED-PAYLOAD' && !/^[0-9a-f]{64}$/.test(payloadHash)) {
    throw new S3Error(400, 'InvalidArgument', 'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, or a valid sha256 value.', {
      ArgumentName: 'x-amz-content-sha256', ArgumentValue: payloadHash,
    });
  }
  return { payloadHash };
}

// --- what a request is ---------------------------------------------------------

// {op, bucket, key}: the S3 operation, from the method, path and query.
function classify(method, rawPath, q) {
  const segs = rawPath.split('/');
  const bucket = pctDecode(segs[1] || '').toString('utf8');
  const key = segs.length > 2 ? pctDecode(segs.slice(2).join('/')).toString('utf8') : '';
  let op = 'Other';
  if (!bucket) {
    op = method === 'GET' ? 'ListBuckets' : 'Other';
  } else if (!key) {
    if (method === 'GET') op = 'uploads' in q ? 'ListMultipartUploads' : 'ListObjects';
    else if (method === 'PUT') op = Object.keys(q).length ? 'PutBucketConfig' : 'CreateBucket';
    else if (method === 'HEAD') op = 'HeadBucket';
    else if (method === 'DELETE') op = 'DeleteBucket';
    else if (method === 'POST') op = 'delete' in q ? 'DeleteObjects' : 'PostBucket';
  } else if (method === 'PUT') {
    op = 'uploadId' in q ? 'UploadPart' : 'PutObject';
  } else if (method === 'POST') {
    op = 'uploads' in q ? 'CreateMultipartUpload' : 'uploadId' in q ? 'CompleteMultipartUpload' : 'PostObject';
  } else if (method === 'GET') {
    op = 'uploadId' in q ? 'ListParts' : 'GetObject';
  } else if (method === 'HEAD') {
    op = 'HeadObject';
  } else if (method === 'DELETE') {
    op = 'uploadId' in q ? 'AbortMultipartUpload' : 'DeleteObject';
  }
  return { op, bucket, key };
}

// The query as logged: signature values never appear.
function logQuery(pairs) {
  if (pairs.length === 0) return '-';
  return pairs.map(p => (p.name === 'X-Amz-Signature' ? `${p.rawName}=REDACTED` : p.raw)).join('&');
}

// --- the proxy -------------------------------------------------------------------

class Proxy {
  constructor(opts) {
    this.opts = opts;
    this.uploads = new Map(); // uploadId -> {bucket, key, initiated, parts: Map}
    this.gone = new Set(); // upload ids aborted or completed
    this.composite = new Map(); // "bucket/key" -> {plain, etag}: multipart ETags
    this.faults = { drop_part: 0, error_part: 0, slow: 0 };
    this.slowRate = 1024 * 1024;
    this.fired = { drop_part: 0, error_part: 0, slow: 0 };
    this.spoolSeq = 0;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    fs.mkdirSync(opts.spool, { recursive: true });
    this.logFd = fs.openSync(opts.log, 'a');
  }

  // Written synchronously before the answer is finished, so a client that has
  // its answer finds the line already there.
  logLine(ctx, status, note) {
    const fields = [ctx.op, ctx.method, ctx.rawPath, ctx.logQuery, status, ctx.bytesIn, ctx.bytesOut];
    if (note) fields.push(note);
    fs.writeSync(this.logFd, fields.join(' ') + '\n');
    ctx.logged = true;
  }

  handle(req, res, expectContinue) {
    const url = req.url;
    const qi = url.indexOf('?');
    const rawPath = qi < 0 ? url : url.slice(0, qi);
    const rawQuery = qi < 0 ? '' : url.slice(qi + 1);
    if (rawPath.startsWith('/__proxy/')) {
      this.control(req, res, rawPath, parseQuery(rawQuery));
      return;
    }
    const pairs = parseQuery(rawQuery);
    const q = {};
    for (const p of pairs) q[p.name] = p.value;
    const ctx = {
      ...classify(req.method, rawPath, q), method: req.method, rawPath, pairs, q,
      logQuery: logQuery(pairs), bytesIn: 0, bytesOut: 0, logged: false, req, res,
    };
    res.on('close', () => {
      if (!ctx.logged) this.logLine(ctx, 0, 'client-gone');
    });
    this.serve(ctx, expectContinue).catch(err => this.fail(ctx, err));
  }

  fail(ctx, err) {
    const { res } = ctx;
    if (!(err instanceof S3Error)) {
      process.stderr.write(`proxy: ${ctx.op} ${ctx.rawPath}: ${err.stack || err}\n`);
      err = new S3Error(500, 'InternalError', 'We encountered an internal error. Please try again.');
    }
    if (res.headersSent || res.destroyed) {
      if (!ctx.logged) this.logLine(ctx, 0, `error=${err.code}`);
      res.destroy();
      return;
    }
    const body = ctx.method === 'HEAD' ? '' : xmlDoc('Error', {
      Code: err.code, Message: err.message, ...err.detail,
      Resource: ctx.rawPath, RequestId: crypto.randomBytes(8).toString('hex').toUpperCase(),
    }, false);
    this.answer(ctx, err.status, { 'Content-Type': 'application/xml' }, body, err.code);
  }

  answer(ctx, status, headers, body, note) {
    const { req, res } = ctx;
    const buf = Buffer.from(body);
    // An unread body is not worth reading: close instead.
    const bodyExpected = req.headers['transfer-encoding'] !== undefined ||
      Number(req.headers['content-length'] || 0) > 0;
    if (bodyExpected && !req.complete) headers.Connection = 'close';
    headers['Content-Length'] = buf.length;
    headers['x-amz-request-id'] = headers['x-amz-request-id'] || crypto.randomBytes(8).toString('hex').toUpperCase();
    ctx.bytesOut = ctx.method === 'HEAD' ? 0 : buf.length;
    this.logLine(ctx, status, note);
    res.writeHead(status, headers);
    res.end(ctx.method === 'HEAD' ? undefined : buf);
  }

  async serve(ctx, expectContinue) {
    const { req, op, q } = ctx;
    const { payloadHash } = authenticate(this.opts, req, ctx.rawPath, ctx.pairs);
    if (op === 'UploadPart' || op === 'ListParts' || op === 'AbortMultipartUpload' || op === 'CompleteMultipartUpload') {
      ctx.upload = this.findUpload(ctx);
    }
    if (op === 'UploadPart') {
      const n = q.partNumber;
      if (!/^\d+$/.test(n || '') || Number(n) < 1 || Number(n) > MAX_PARTS) {
        throw new S3Error(400, 'InvalidArgument', `Part number must be an integer between 1 and ${MAX_PARTS}, inclusive`, {
          ArgumentName: 'partNumber', ArgumentValue: n,
        });
      }
    }
    const declared = Number(req.headers['content-length'] || 0);
    if ((op === 'UploadPart' || op === 'PutObject') && declared > MAX_PUT_BYTES) {
      throw new S3Error(400, 'EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size', {
        ProposedSize: declared, MaxSizeAllowed: MAX_PUT_BYTES,
      });
    }
    const md5Header = req.headers['content-md5'];
    let wantMd5 = null;
    if (md5Header !== undefined) {
      wantMd5 = Buffer.from(md5Header, 'base64');
      if (wantMd5.length !== 16 || wantMd5.toString('base64') !== md5Header.trim()) {
        throw new S3Error(400, 'InvalidDigest', 'The Content-MD5 you specified was invalid.', { 'Content-MD5': md5Header });
      }
    }
    if (op === 'ListParts') return this.listParts(ctx);
    if (op === 'AbortMultipartUpload') return this.abort(ctx);
    if (op === 'ListMultipartUploads') return this.listUploads(ctx);

    let body = null;
    const hasBody = req.method === 'PUT' || req.method === 'POST' ||
      req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] || 0) > 0;
    if (hasBody) {
      if (expectContinue) ctx.res.writeContinue();
      body = await this.spool(ctx);
      if (body === null) return; // the connection is gone
      try {
        if (/^[0-9a-f]{64}$/.test(payloadHash) && body.sha256 !== payloadHash) {
          throw new S3Error(400, 'XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.", {
            ClientComputedContentSHA256: payloadHash, S3ComputedContentSHA256: body.sha256,
          });
        }
        if (wantMd5 && !wantMd5.equals(body.md5)) {
          throw new S3Error(400, 'BadDigest', 'The Content-MD5 you specified did not match what we received.', {
            ExpectedDigest: wantMd5.toString('hex'), CalculatedDigest: body.md5.toString('hex'),
          });
        }
        if (op === 'UploadPart' && this.take('error_part')) {
          throw new S3Error(500, 'InternalError', 'We encountered an internal error. Please try again. (fault error_part)');
        }
        if (op === 'CompleteMultipartUpload') {
          ctx.completion = this.checkCompletion(ctx, fs.readFileSync(body.file, 'utf8'));
        }
        await this.forward(ctx, body);
      } finally {
        fs.rmSync(body.file, { force: true });
      }
    } else {
      await this.forward(ctx, null);
    }
  }

  take(name) {
    if (this.faults[name] <= 0) return false;
    this.faults[name]--;
    this.fired[name]++;
    return true;
  }

  findUpload(ctx) {
    const id = ctx.q.uploadId;
    const up = this.uploads.get(id);
    if (!up || up.bucket !== ctx.bucket || up.key !== ctx.key) {
      throw new S3Error(404, 'NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.', { UploadId: id });
    }
    return up;
  }

  // Receives the body into a spool file: {file, size, sha256, md5}, or null
  // when the client went away (or a drop fault cut it).
  spool(ctx) {
    const { req, op } = ctx;
    const file = path.join(this.opts.spool, `${process.pid}-${++this.spoolSeq}`);
    const sha = crypto.createHash('sha256');
    const md5 = crypto.createHash('md5');
    const length = Number(req.headers['content-length'] || 0);
    const drop = op === 'UploadPart' && this.take('drop_part');
    const slow = (op === 'UploadPart' || op === 'PutObject') && this.take('slow');
    const rate = this.slowRate;
    const started = Date.now();
    return new Promise((resolve, reject) => {
      const out = fs.createWriteStream(file);
      let settled = false;
      const give = v => {
        if (settled) return;
        settled = true;
        if (v === null) {
          out.once('close', () => fs.rmSync(file, { force: true }));
          out.destroy();
        }
        resolve(v);
      };
      // Two reasons to hold the client back: the spool file's buffer is
      // full, or a slow fault is ahead of its rate.
      let waitDrain = false;
      let waitRate = false;
      const unblock = () => { if (!settled && !waitDrain && !waitRate) req.resume(); };
      const cut = note => {
        if (!ctx.logged) this.logLine(ctx, 0, note);
        req.socket.destroy();
        give(null);
      };
      req.on('data', chunk => {
        if (settled) return;
        ctx.bytesIn += chunk.length;
        sha.update(chunk);
        md5.update(chunk);
        if (!out.write(chunk)) {
          waitDrain = true;
          req.pause();
          out.once('drain', () => { waitDrain = false; unblock(); });
        }
        // Half the part, then the connection goes, as a network drop would.
        if (drop && ctx.bytesIn >= Math.max(1, Math.floor(length / 2))) {
          cut('fault=drop_part');
          return;
        }
        if (slow) {
          const ahead = (ctx.bytesIn / rate) * 1000 - (Date.now() - started);
          if (ahead > 0 && !waitRate) {
            waitRate = true;
            req.pause();
            setTimeout(() => { waitRate = false; unblock(); }, ahead);
          }
        }
      });
      req.on('end', () => {
        if (settled) return;
        if (drop) { // an empty body: drop it all the same
          cut('fault=drop_part');
          return;
        }
        out.end(() => {
          give({ file, size: ctx.bytesIn, sha256: sha.digest('hex'), md5: md5.digest() });
        });
      });
      req.on('aborted', () => give(null));
      req.on('error', () => give(null));
      req.on('close', () => { if (!req.complete) give(null); });
      out.on('error', err => { if (!settled) { settled = true; reject(err); } });
    });
  }

  // Sends the request on to s3rver, unsigned, and relays (or rewrites) the answer.
  forward(ctx, body) {
    const { req, op } = ctx;
    const headers = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (!HOP_HEADERS.has(name)) headers[name] = value;
    }
    headers.host = `${this.opts.upHost}:${this.opts.upPort}`;
    headers['content-length'] = body ? body.size : 0;
    const query = ctx.pairs.filter(p => !AUTH_QUERY.has(p.name.toLowerCase())).map(p => p.raw).join('&');
    const upPath = ctx.rawPath + (query ? '?' + query : '');
    return new Promise((resolve, reject) => {
      const up = http.request({
        host: this.opts.upHost, port: this.opts.upPort, method: req.method,
        path: upPath, headers, agent: this.agent,
      }, upRes => {
        this.relay(ctx, body, upRes).then(resolve, reject);
      });
      up.on('error', reject);
      if (body) {
        const src = fs.createReadStream(body.file);
        src.on('error', err => { up.destroy(err); reject(err); });
        src.pipe(up);
      } else {
        up.end();
      }
    });
  }

  async relay(ctx, body, upRes) {
    const { res, op } = ctx;
    const status = upRes.statusCode;
    const headers = { ...upRes.headers };
    delete headers.connection;
    delete headers['keep-alive'];
    delete headers['transfer-encoding'];
    const ok = status >= 200 && status < 300;
    const rewrite = ok && (op === 'CreateMultipartUpload' || op === 'CompleteMultipartUpload' ||
      (op === 'ListObjects' && (this.composite.size > 0 || ctx.q['encoding-type'] === 'url')));
    if (rewrite) {
      let text = (await readAll(upRes)).toString('utf8');
      if (op === 'CreateMultipartUpload') this.created(ctx, text);
      if (op === 'CompleteMultipartUpload') text = this.completed(ctx, text);
      if (op === 'ListObjects') text = this.rewriteListing(ctx, text);
      delete headers['content-length'];
      this.answer(ctx, status, headers, text);
      return;
    }
    if (ok && op === 'UploadPart') {
      // s3rver's ETag is the part's MD5, which we computed on the way in.
      const etag = String(upRes.headers.etag || '').replace(/"/g, '');
      const mine = body.md5.toString('hex');
      if (etag !== mine) process.stderr.write(`proxy: s3rver's ETag ${etag} for part ${ctx.q.partNumber} is not its MD5 ${mine}\n`);
      ctx.upload.parts.set(Number(ctx.q.partNumber), { size: body.size, etag: mine, modified: new Date() });
    }
    if (ok && (op === 'PutObject' || op === 'DeleteObject')) {
      this.composite.delete(`${ctx.bucket}/${ctx.key}`);
    }
    if (ok && (op === 'GetObject' || op === 'HeadObject')) {
      const c = this.composite.get(`${ctx.bucket}/${ctx.key}`);
      if (c && String(headers.etag || '').replace(/"/g, '') === c.plain) headers.etag = `"${c.etag}"`;
    }
    // Relay as it comes, logging before the last byte goes out.
    await new Promise((resolve, reject) => {
      res.writeHead(status, headers);
      upRes.on('data', chunk => {
        ctx.bytesOut += chunk.length;
        if (!res.write(chunk)) {
          upRes.pause();
          res.once('drain', () => upRes.resume());
        }
      });
      upRes.on('end', () => {
        this.logLine(ctx, status);
        res.end();
        resolve();
      });
      upRes.on('error', reject);
      res.on('close', () => { if (!upRes.complete) upRes.destroy(); });
    });
  }

  created(ctx, text) {
    const m = /<UploadId>([^<]+)<\/UploadId>/.exec(text);
    if (!m) throw new Error(`no UploadId in s3rver's answer: ${text.slice(0, 200)}`);
    const id = xmlUnescape(m[1]);
    this.uploads.set(id, { id, bucket: ctx.bucket, key: ctx.key, initiated: new Date(), parts: new Map() });
  }

  // R2's rules, checked before s3rver (which checks none) assembles anything.
  checkCompletion(ctx, xml) {
    const up = ctx.upload;
    const listed = [];
    const partRe = /<Part>([\s\S]*?)<\/Part>/g;
    let m;
    while ((m = partRe.exec(xml)) !== null) {
      const num = /<PartNumber>\s*([^<]*?)\s*<\/PartNumber>/.exec(m[1]);
      const etag = /<ETag>\s*([^<]*?)\s*<\/ETag>/.exec(m[1]);
      if (!num || !etag || !/^\d+$/.test(num[1])) {
        throw new S3Error(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema.');
      }
      listed.push({ number: Number(num[1]), etag: xmlUnescape(etag[1]).replace(/"/g, '').toLowerCase() });
    }
    if (!/<CompleteMultipartUpload[\s>]/.test(xml) || listed.length === 0) {
      throw new S3Error(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema.');
    }
    for (let i = 1; i < listed.length; i++) {
      if (listed[i].number <= listed[i - 1].number) {
        throw new S3Error(400, 'InvalidPartOrder', 'The list of parts was not in ascending order. The parts list must be specified in order by part number.', {
          UploadId: up.id,
        });
      }
    }
    const parts = [];
    for (const want of listed) {
      const have = up.parts.get(want.number);
      if (!have || have.etag !== want.etag) {
        throw new S3Error(400, 'InvalidPart', 'One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part\'s entity tag.', {
          UploadId: up.id, PartNumber: want.number, ETag: want.etag,
        });
      }
      parts.push(have);
    }
    const min = this.opts.minPartSize;
    for (let i = 0; i < parts.length - 1; i++) {
      if (parts[i].size < min) {
        throw new S3Error(400, 'EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size.', {
          ProposedSize: parts[i].size, MinSizeAllowed: min, PartNumber: listed[i].number, ETag: parts[i].etag,
        });
      }
    }
    const first = parts[0].size;
    for (let i = 1; i < parts.length; i++) {
      const last = i === parts.length - 1;
      if ((!last && parts[i].size !== first) || (last && parts[i].size > first)) {
        throw new S3Error(400, 'InvalidPart', 'All non-trailing parts must have the same length, and the last part may not be larger.', {
          UploadId: up.id, PartNumber: listed[i].number, Size: parts[i].size, ExpectedSize: first,
        });
      }
    }
    const md5s = Buffer.concat(parts.map(p => Buffer.from(p.etag, 'hex')));
    return { etag: `${crypto.createHash('md5').update(md5s).digest('hex')}-${parts.length}` };
  }

  completed(ctx, text) {
    const m = /<ETag>([^<]*)<\/ETag>/.exec(text);
    const plain = m ? xmlUnescape(m[1]).replace(/"/g, '') : '';
    const { etag } = ctx.completion;
    this.composite.set(`${ctx.bucket}/${ctx.key}`, { plain, etag });
    this.uploads.delete(ctx.upload.id);
    this.gone.add(ctx.upload.id);
    const quoted = xmlEscape(`"${etag}"`);
    return m ? text.replace(m[0], `<ETag>${quoted}</ETag>`) : text;
  }

  // s3rver's listings show the plain MD5 of multipart objects and ignore
  // encoding-type=url; R2 and S3 do neither.
  rewriteListing(ctx, text) {
    text = text.replace(/<Contents>([\s\S]*?)<\/Contents>/g, (block, inner) => {
      const key = /<Key>([^<]*)<\/Key>/.exec(inner);
      const etag = /<ETag>([^<]*)<\/ETag>/.exec(inner);
      if (!key || !etag) return block;
      const c = this.composite.get(`${ctx.bucket}/${xmlUnescape(key[1])}`);
      if (!c || xmlUnescape(etag[1]).replace(/"/g, '') !== c.plain) return block;
      return block.replace(etag[0], `<ETag>${xmlEscape(`"${c.etag}"`)}</ETag>`);
    });
    if (ctx.q['encoding-type'] !== 'url') return text;
    text = text.replace(/<(Key|Prefix|Delimiter|StartAfter|Marker|NextMarker)>([^<]*)<\/\1>/g,
      (m, tag, value) => `<${tag}>${uriEncode(Buffer.from(xmlUnescape(value), 'utf8'), true)}</${tag}>`);
    return text.replace(/(<IsTruncated>)/, '<EncodingType>url</EncodingType>$1');
  }

  listParts(ctx) {
    const up = ctx.upload;
    const intArg = (name, dflt) => {
      const v = ctx.q[name];
      if (v === undefined) return dflt;
      if (!/^\d+$/.test(v)) {
        throw new S3Error(400, 'InvalidArgument', `Provided ${name} not an integer or within integer range`, { ArgumentName: name, ArgumentValue: v });
      }
      return Number(v);
    };
    const marker = intArg('part-number-marker', 0);
    const max = Math.min(intArg('max-parts', 1000), 1000);
    const all = [...up.parts.entries()].filter(([n]) => n > marker).sort((a, b) => a[0] - b[0]);
    const page = all.slice(0, max);
    const truncated = all.length > page.length;
    const owner = { ID: 'ferry-test', DisplayName: 'ferry-test' };
    const body = xmlDoc('ListPartsResult', {
      Bucket: up.bucket, Key: up.key, UploadId: up.id,
      Initiator: owner, Owner: owner, StorageClass: 'STANDARD',
      PartNumberMarker: marker,
      NextPartNumberMarker: page.length ? page[page.length - 1][0] : marker,
      MaxParts: max, IsTruncated: truncated ? 'true' : 'false',
      Part: page.map(([n, p]) => ({
        PartNumber: n, LastModified: p.modified.toISOString(), ETag: `"${p.etag}"`, Size: p.size,
      })),
    });
    this.answer(ctx, 200, { 'Content-Type': 'application/xml' }, body);
  }

  abort(ctx) {
    const up = ctx.upload;
    this.uploads.delete(up.id);
    this.gone.add(up.id);
    // s3rver keeps the parts in <data>/<bucket>/._S3rver_uploads/<id>.
    if (this.opts.dataDir && /^[0-9a-zA-Z_-]+$/.test(up.id)) {
      fs.rmSync(path.join(this.opts.dataDir, up.bucket, '._S3rver_uploads', up.id), { recursive: true, force: true });
    }
    this.answer(ctx, 204, {}, '');
  }

  listUploads(ctx) {
    const prefix = ctx.q.prefix || '';
    const max = Math.min(Number(ctx.q['max-uploads'] || 1000) || 1000, 1000);
    const keyMarker = ctx.q['key-marker'] || '';
    const idMarker = ctx.q['upload-id-marker'] || '';
    const all = [...this.uploads.values()]
      .filter(u => u.bucket === ctx.bucket && u.key.startsWith(prefix))
      .filter(u => u.key > keyMarker || (u.key === keyMarker && idMarker && u.id > idMarker))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.initiated - b.initiated));
    const page = all.slice(0, max);
    const last = page[page.length - 1];
    const owner = { ID: 'ferry-test', DisplayName: 'ferry-test' };
    const body = xmlDoc('ListMultipartUploadsResult', {
      Bucket: ctx.bucket, KeyMarker: keyMarker, UploadIdMarker: idMarker,
      NextKeyMarker: last ? last.key : '', NextUploadIdMarker: last ? last.id : '',
      Prefix: prefix, MaxUploads: max, IsTruncated: all.length > page.length ? 'true' : 'false',
      Upload: page.map(u => ({
        Key: u.key, UploadId: u.id, Initiator: owner, Owner: owner,
        StorageClass: 'STANDARD', Initiated: u.initiated.toISOString(),
      })),
    });
    this.answer(ctx, 200, { 'Content-Type': 'application/xml' }, body);
  }

  // The test's side door: /__proxy/fault?name=N&count=C[&rate=BYTES_PER_S],
  // /__proxy/faults, /__proxy/log, /__proxy/uploads.
  control(req, res, rawPath, pairs) {
    const q = {};
    for (const p of pairs) q[p.name] = p.value;
    const send = (status, text, type = 'text/plain') => {
      res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(text) });
      res.end(text);
    };
    req.resume();
    if (rawPath === '/__proxy/fault' && req.method === 'POST') {
      if (!FAULTS.includes(q.name)) return send(400, `unknown fault ${q.name}; known: ${FAULTS.join(' ')}\n`);
      const count = q.count === undefined ? 1 : Number(q.count);
      if (!Number.isInteger(count) || count < 0) return send(400, `count must be a whole number, not ${q.count}\n`);
      if (q.rate !== undefined) {
        const rate = Number(q.rate);
        if (!(rate > 0)) return send(400, `rate must be a positive number of bytes per second\n`);
        this.slowRate = rate;
      }
      this.faults[q.name] = count;
      return send(200, `${q.name} armed for ${count}\n`);
    }
    if (rawPath === '/__proxy/faults' && req.method === 'GET') {
      return send(200, JSON.stringify({ armed: this.faults, fired: this.fired, slow_rate: this.slowRate }) + '\n', 'application/json');
    }
    if (rawPath === '/__proxy/log' && req.method === 'GET') {
      return send(200, fs.readFileSync(this.opts.log, 'utf8'));
    }
    if (rawPath === '/__proxy/uploads' && req.method === 'GET') {
      const list = [...this.uploads.values()].map(u => ({
        bucket: u.bucket, key: u.key, upload_id: u.id,
        parts: [...u.parts.entries()].map(([n, p]) => ({ number: n, size: p.size, etag: p.etag })),
      }));
      return send(200, JSON.stringify(list) + '\n', 'application/json');
    }
    return send(404, `no such control endpoint ${req.method} ${rawPath}\n`);
  }
}

function readAll(stream) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    stream.on('data', c => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

function main() {
  let opts;
  try {
    opts = parseArgs(process.argv);
  } catch (err) {
    process.stderr.write(`proxy: ${err.message}\n`);
    process.exit(2);
  }
  const proxy = new Proxy(opts);
  const server = http.createServer();
  server.keepAliveTimeout = 30000;
  server.requestTimeout = 0; // a slow fault may stretch a part over minutes
  server.on('request', (req, res) => proxy.handle(req, res, false));
  server.on('checkContinue', (req, res) => proxy.handle(req, res, true));
  server.on('clientError', (err, socket) => socket.destroy());
  server.listen(0, '127.0.0.1', () => {
    const tmp = `${opts.portFile}.tmp`;
    fs.writeFileSync(tmp, `${server.address().port}\n`);
    fs.renameSync(tmp, opts.portFile);
  });
  const stop = () => process.exit(0);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (require.main === module) main();

module.exports = { sigv4, canonicalQuery, parseQuery, uriEncode, pctDecode, classify };
