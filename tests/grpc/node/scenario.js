// Drives a Stonetown (or Permify) gRPC server through Permify's Node.js SDK.
//
//   node scenario.js < spec.json
//
// The spec (written by tests/grpc/test_node_sdk.py from tests/grpc/scenario.py) names the server,
// its key and the scenario: a tenant, a schema, tuples, and the questions to ask. The answers the
// SDK received are printed as one JSON object; the Python test compares them with what they must
// be. Nothing here knows the expected answers.
"use strict";

const permify = require("@permify/permify-node");

function readStdin() {
  return new Promise((resolve, reject) => {
    let text = "";
    process.stdin.setEncoding("utf8");
    process.stdin.on("data", (chunk) => (text += chunk));
    process.stdin.on("end", () => resolve(text));
    process.stdin.on("error", reject);
  });
}

// "doc:1#viewer@team:eng#member" -> the SDK's Tuple.
function tupleOf(text) {
  const [left, right] = text.split("@");
  const [entity, relation] = left.split("#");
  const [subject, subjectRelation = ""] = right.split("#");
  const [type, id] = entity.split(":");
  const [subjectType, subjectId] = subject.split(":");
  return {
    entity: { type, id },
    relation,
    subject: { type: subjectType, id: subjectId, relation: subjectRelation },
  };
}

function entityOf(text) {
  const [type, id] = text.split(":");
  return { type, id };
}

function subjectOf(text) {
  const [ref, relation = ""] = text.split("#");
  return { ...entityOf(ref), relation };
}

function tupleText(t) {
  const relation = t.subject.relation ? `#${t.subject.relation}` : "";
  return `${t.entity.type}:${t.entity.id}#${t.relation}@${t.subject.type}:${t.subject.id}${relation}`;
}

const checkResult = (value) => permify.grpc.base.checkResultToJSON(value);

async function main() {
  const spec = JSON.parse(await readStdin());
  const config = { endpoint: spec.address, cert: null, pk: null, certChain: null, insecure: true };
  const client = permify.grpc.newClient(config, permify.grpc.newAccessTokenInterceptor(spec.key));
  const out = {};
  const tenantId = spec.tenant;

  out.tenant = (await client.tenancy.create({ id: tenantId, name: tenantId })).tenant.id;
  out.schema_version = (await client.schema.write({ tenantId, schema: spec.schema })).schemaVersion;
  const written = await client.data.writeRelationships({
    tenantId,
    metadata: { schemaVersion: "" },
    tuples: spec.tuples.map(tupleOf),
  });
  const snapToken = written.snapToken;
  out.snap_token = snapToken;

  out.checks = [];
  for (const [entity, permission, subject] of spec.checks) {
    const answer = await client.permission.check({
      tenantId,
      metadata: { snapToken, schemaVersion: "", depth: 20 },
      entity: entityOf(entity),
      permission,
      subject: subjectOf(subject),
    });
    out.checks.push(checkResult(answer.can));
  }

  const [entityType, permission, subject] = spec.lookup_entity;
  const lookup = {
    tenantId,
    metadata: { snapToken, schemaVersion: "", depth: 20 },
    entityType,
    permission,
    subject: subjectOf(subject),
  };
  out.lookup_entity = (await client.permission.lookupEntity(lookup)).entityIds;
  out.lookup_entity_stream = [];
  for await (const item of client.permission.lookupEntityStream(lookup)) {
    out.lookup_entity_stream.push(item.entityId);
  }

  const [entity, subjectPermission, kind] = spec.lookup_subject;
  out.lookup_subject = (
    await client.permission.lookupSubject({
      tenantId,
      metadata: { snapToken, schemaVersion: "", depth: 20 },
      entity: entityOf(entity),
      permission: subjectPermission,
      subjectReference: { type: kind, relation: "" },
    })
  ).subjectIds;

  const [spEntity, spSubject] = spec.subject_permission;
  const permissions = await client.permission.subjectPermission({
    tenantId,
    metadata: { snapToken, schemaVersion: "", onlyPermission: false, depth: 20 },
    entity: entityOf(spEntity),
    subject: subjectOf(spSubject),
  });
  out.subject_permission = Object.fromEntries(
    Object.entries(permissions.results).map(([name, value]) => [name, checkResult(value)]),
  );

  out.read_pages = [];
  let continuousToken = "";
  do {
    const page = await client.data.readRelationships({
      tenantId,
      metadata: { snapToken },
      filter: { entity: { type: spec.read_type, ids: [] }, relation: "" },
      pageSize: spec.read_page_size,
      continuousToken,
    });
    out.read_pages.push(page.tuples.map(tupleText));
    continuousToken = page.continuousToken;
  } while (continuousToken);

  // Watch from the first write's token; a second write must arrive on the stream.
  const stop = new AbortController();
  const changes = client.watch.watch({ tenantId, snapToken }, { signal: stop.signal });
  const later = await client.data.writeRelationships({
    tenantId,
    metadata: { schemaVersion: "" },
    tuples: [tupleOf(spec.later_tuple)],
  });
  out.later_snap_token = later.snapToken;
  for await (const message of changes) {
    out.watch = {
      snap_token: message.changes.snapToken,
      tuples: message.changes.dataChanges.map((c) => tupleText(c.type.tuple)),
      operations: message.changes.dataChanges.map((c) =>
        permify.grpc.base.dataChange_OperationToJSON(c.operation),
      ),
    };
    break; // leaving the loop cancels the call
  }
  stop.abort();

  // An error: Permify's error code leads the message, the gRPC code is INVALID_ARGUMENT (3).
  try {
    await client.permission.check({
      tenantId,
      metadata: { snapToken: "", schemaVersion: "", depth: 2 },
      entity: entityOf("doc:1"),
      permission: "view",
      subject: subjectOf("user:ann"),
    });
    out.error = null;
  } catch (error) {
    out.error = { code: error.code, details: error.details };
  }

  process.stdout.write(JSON.stringify(out) + "\n");
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`scenario failed: ${error && error.stack ? error.stack : error}\n`);
    process.exit(1);
  },
);
