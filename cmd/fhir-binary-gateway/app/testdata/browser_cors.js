// Driven by TestBrowserCORS (browser_test.go) in headless Chromium: a SMART-style
// browser app on another origin than the gateway, using nothing but fetch().
// Each step returns what the page could see; the whole result is posted back
// to the page's own server (same origin), where the Go test checks it.
const cfg = JSON.parse(document.getElementById('cfg').textContent);
const wait = () => AbortSignal.timeout(20000); // every request is bounded
const bearer = (tok) => ({ Authorization: 'Bearer ' + tok });

const hex = async (buf) =>
  [...new Uint8Array(await crypto.subtle.digest('SHA-256', buf))].map((b) => b.toString(16).padStart(2, '0')).join('');
const b64 = async (buf) => btoa(String.fromCharCode(...new Uint8Array(await crypto.subtle.digest('SHA-256', buf))));
const headers = (r, ...names) => Object.fromEntries(names.map((n) => [n, r.headers.get(n)]));

// step runs fn and keeps its result, or the error a rejected fetch gives.
const out = { role: cfg.role };
async function step(name, fn) {
  try {
    out[name] = await fn();
  } catch (e) {
    out[name] = { rejected: true, error: e.name + ': ' + e.message };
  }
}

// download follows the gateway's 307 to S3 (fetch's default redirect mode)
// and hashes what arrives.
async function download(id, tok) {
  const r = await fetch(cfg.gateway + '/Binary/' + id + '/$binary-access-read', { headers: bearer(tok), signal: wait() });
  const body = await r.arrayBuffer();
  return {
    status: r.status, redirected: r.redirected, url: r.url, size: body.byteLength, sha256: await hex(body),
    headers: headers(r, 'Content-Type', 'Content-Disposition', 'ETag'),
  };
}

async function allowed() {
  // (1) the FHIR JSON with a bearer token: Authorization makes it a preflighted request.
  await step('read', async () => {
    const r = await fetch(cfg.gateway + '/Binary/' + cfg.id, {
      headers: { ...bearer(cfg.token), Accept: 'application/fhir+json' }, signal: wait(),
    });
    const j = await r.json();
    return {
      status: r.status, resourceType: j.resourceType, id: j.id, contentType: j.contentType,
      headers: headers(r, 'ETag', 'Last-Modified', 'Content-Type', 'Content-Location'),
    };
  });
  // A create from the browser: Location, ETag and Last-Modified are readable.
  await step('create', async () => {
    const r = await fetch(cfg.gateway + '/Binary', {
      method: 'POST', body: 'made in a browser',
      headers: { ...bearer(cfg.token), 'Content-Type': 'text/plain', 'Content-Disposition': 'attachment; filename="note.txt"' },
      signal: wait(),
    });
    return { status: r.status, headers: headers(r, 'Location', 'ETag', 'Last-Modified') };
  });
  // Update with If-Match and delete (PUT and DELETE preflights), and abort an upload session.
  await step('edit', async () => {
    const url = out.create.headers.Location.replace(/\/_history\/.*$/, '');
    const put = await fetch(url, {
      method: 'PUT', body: 'edited in a browser', signal: wait(),
      headers: { ...bearer(cfg.token), 'Content-Type': 'text/plain', 'If-Match': out.create.headers.ETag },
    });
    const del = await fetch(url, { method: 'DELETE', headers: bearer(cfg.token), signal: wait() });
    const gone = await fetch(url, { headers: { ...bearer(cfg.token), Accept: 'application/fhir+json' }, signal: wait() });
    const open = await fetch(cfg.gateway + '/Binary/$upload', {
      method: 'POST', signal: wait(),
      headers: { ...bearer(cfg.token), 'X-Upload-Content-Type': 'text/plain', 'X-Upload-Length': '10' },
    });
    const abort = await fetch(open.headers.get('Location'), { method: 'DELETE', headers: bearer(cfg.token), signal: wait() });
    return {
      update: { status: put.status, etag: put.headers.get('ETag') }, delete: del.status, readAfterDelete: gone.status,
      openSession: open.status, abortSession: abort.status,
    };
  });
  // (2) the content through the 307 to S3.
  await step('download', () => download(cfg.id, cfg.token));

  // (3) an upload session: open it, PUT the parts straight to S3, complete, read back.
  await step('upload', async () => {
    const data = new Uint8Array(cfg.uploadSize);
    for (let i = 0; i < data.length; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
    const res = { sha256: await hex(data), parts: [] };
    let r = await fetch(cfg.gateway + '/Binary/$upload', {
      method: 'POST', signal: wait(),
      headers: {
        ...bearer(cfg.token), 'X-Upload-Content-Type': 'image/png', 'X-Upload-Length': String(data.length),
        'X-Upload-Part-Size': String(cfg.partSize), 'Repr-Digest': 'sha-256=:' + (await b64(data)) + ':',
      },
    });
    const session = await r.json();
    res.open = { status: r.status, location: r.headers.get('Location') };
    if (r.status !== 201) return { ...res, outcome: session };
    const parts = session.parameter.filter((p) => p.name === 'part').map((p) => Object.fromEntries(p.part.map((f) => [f.name, f.valueUrl ?? f.valueInteger ?? f.valueDecimal])));
    for (const p of parts) {
      const from = (p.number - 1) * cfg.partSize;
      // No token: the presigned URL is the authorization.
      const put = await fetch(p.url, { method: 'PUT', body: data.subarray(from, from + p.size), signal: wait() });
      res.parts.push({ number: p.number, status: put.status, etag: put.headers.get('ETag') });
    }
    r = await fetch(res.open.location, { method: 'POST', headers: bearer(cfg.token), signal: wait() });
    const done = await r.json();
    res.complete = { status: r.status, id: done.id, headers: headers(r, 'Location', 'ETag', 'Last-Modified') };
    if (r.status === 201) res.readBack = await download(done.id, cfg.token);
    return res;
  });

  // Another client's token: the Binary does not exist for it, and no redirect is issued.
  await step('otherClient', async () => {
    const r = await fetch(cfg.gateway + '/Binary/' + cfg.id, {
      headers: { ...bearer(cfg.otherToken), Accept: 'application/fhir+json' }, signal: wait(),
    });
    const j = await r.json();
    const d = await fetch(cfg.gateway + '/Binary/' + cfg.id + '/$binary-access-read', { headers: bearer(cfg.otherToken), signal: wait() });
    const dj = await d.json();
    return { read: { status: r.status, resourceType: j.resourceType }, download: { status: d.status, redirected: d.redirected, resourceType: dj.resourceType } };
  });
  // A token the gateway refuses: the app can read the 401 and WWW-Authenticate (to refresh its token).
  await step('badToken', async () => {
    const r = await fetch(cfg.gateway + '/Binary/' + cfg.id, { headers: { ...bearer('not-a-token'), Accept: 'application/fhir+json' }, signal: wait() });
    const j = await r.json();
    return { status: r.status, resourceType: j.resourceType, headers: headers(r, 'WWW-Authenticate') };
  });
}

// (4) a page on an origin not in GATEWAY_CORS_ORIGINS: every fetch rejects.
async function blocked() {
  await step('read', async () => {
    const r = await fetch(cfg.gateway + '/Binary/' + cfg.id, { headers: { ...bearer(cfg.token), Accept: 'application/fhir+json' }, signal: wait() });
    return { status: r.status };
  });
  await step('download', async () => ({ status: (await download(cfg.id, cfg.token)).status }));
  // A simple request (no preflight) is sent, but its answer is withheld.
  await step('metadata', async () => ({ status: (await fetch(cfg.gateway + '/metadata', { signal: wait() })).status }));
}

(async () => {
  try {
    await (cfg.role === 'allowed' ? allowed() : blocked());
  } catch (e) {
    out.error = String(e);
  }
  await fetch('/result', { method: 'POST', body: JSON.stringify(out) });
})();
