// clients.mjs: drives one Binary scenario (create, read, update, search,
// history, vread, delete) with two real FHIR client libraries,
// fhir-kit-client and SMART's fhirclient, and validates every resource they
// get back with the R4 validator.
//
//   node clients.mjs http://127.0.0.1:PORT/fhir
//
// Prints one line per step; exits 1 when a step failed.
import { Client } from 'fhir-kit-client';
import smart from 'fhirclient';
import { validateFHIR } from './fhir-validate.mjs';

const base = process.argv[2];
if (!base) {
  console.error('usage: node clients.mjs BASE_URL');
  process.exit(2);
}
let failed = 0;

function check(client, step, ok, detail) {
  if (!ok) failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${client}: ${step}${detail ? ` (${detail})` : ''}`);
}

function valid(client, step, resource) {
  const { errors } = validateFHIR(resource);
  check(client, `${step} is valid R4`, errors.length === 0, errors.join('; '));
}

const b64 = (s) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s) => Buffer.from(s ?? '', 'base64').toString('utf8');

// scenario runs the same steps through one client's five verbs.
async function scenario(name, api) {
  const v1 = `${name} version 1\n`;
  const v2 = `${name} version 2\n`;
  const created = await api.create({ resourceType: 'Binary', contentType: 'text/plain', data: b64(v1) });
  valid(name, 'create answer', created);
  const id = created.id;
  check(name, 'create assigns an id and version 1', !!id && created.meta?.versionId === '1', JSON.stringify(created.meta));
  // A Binary resource sent as JSON is a Binary, not JSON content (fhirclient
  // sends application/json): its contentType is the one inside.
  check(name, 'create stores the resource, not the JSON as content', created.contentType === 'text/plain', created.contentType);

  const read = await api.read(id);
  valid(name, 'read', read);
  check(name, 'read gives the Binary resource back with its data',
    read.resourceType === 'Binary' && read.id === id && read.meta?.versionId === '1' && unb64(read.data) === v1,
    `resourceType ${read.resourceType}, contentType ${read.contentType}`);
  check(name, 'read keeps the contentType', read.contentType === 'text/plain', read.contentType);

  const updated = await api.update({ resourceType: 'Binary', id, contentType: 'text/plain', data: b64(v2) });
  valid(name, 'update answer', updated);
  check(name, 'update makes version 2', updated.meta?.versionId === '2', JSON.stringify(updated.meta));

  const found = await api.search(id);
  valid(name, 'search Bundle', found);
  check(name, 'search finds it', found.type === 'searchset' && found.entry?.some((e) => e.resource?.id === id), `total ${found.total}`);

  const hist = await api.history(id);
  valid(name, 'history Bundle', hist);
  check(name, 'history has both versions', hist.type === 'history' && hist.entry?.length === 2, `${hist.entry?.length} entries`);

  const old = await api.vread(id, '1');
  valid(name, 'vread', old);
  check(name, 'vread 1 gives version 1', old.meta?.versionId === '1' && unb64(old.data) === v1, JSON.stringify(old.meta));

  await api.delete(id);
  check(name, 'delete', true);
  let status = 0;
  let outcome;
  try {
    await api.read(id);
  } catch (e) {
    status = e?.response?.status ?? e?.status ?? e?.statusCode ?? 0;
    outcome = e?.response?.data ?? e?.body;
  }
  check(name, 'read after delete answers 410', status === 410, `status ${status}`);
  if (outcome && typeof outcome === 'object') valid(name, '410 OperationOutcome', outcome);
}

const kit = new Client({ baseUrl: base });
const fkc = {
  create: (r) => kit.create({ resourceType: 'Binary', body: r }),
  read: (id) => kit.read({ resourceType: 'Binary', id }),
  update: (r) => kit.update({ resourceType: 'Binary', id: r.id, body: r }),
  search: (id) => kit.search({ resourceType: 'Binary', searchParams: { _id: id } }),
  history: (id) => kit.history({ resourceType: 'Binary', id }),
  vread: (id, version) => kit.vread({ resourceType: 'Binary', id, version }),
  delete: (id) => kit.delete({ resourceType: 'Binary', id }),
};

const fc = new smart.FhirClient(base);
const fhirclient = {
  create: (r) => fc.create(r),
  read: (id) => fc.fhirRequest(`Binary/${id}`),
  update: (r) => fc.update(r),
  search: (id) => fc.fhirRequest(`Binary?_id=${encodeURIComponent(id)}`),
  history: (id) => fc.fhirRequest(`Binary/${id}/_history`),
  vread: (id, version) => fc.fhirRequest(`Binary/${id}/_history/${version}`),
  delete: (id) => fc.delete(`Binary/${id}`),
};

for (const [name, api] of [['fhir-kit-client', fkc], ['fhirclient', fhirclient]]) {
  try {
    await scenario(name, api);
  } catch (e) {
    failed++;
    const status = e?.response?.status ?? e?.status ?? '';
    const body = e?.response?.data ?? e?.body ?? '';
    console.log(`FAIL ${name}: ${e?.message ?? e} ${status} ${typeof body === 'string' ? body : JSON.stringify(body)}`);
  }
}
console.log(failed === 0 ? 'clients: all steps passed' : `clients: ${failed} steps failed`);
process.exit(failed === 0 ? 0 : 1);
