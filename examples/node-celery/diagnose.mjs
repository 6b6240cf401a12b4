// Publish snapshots to gnn-service and poll their outcomes with celery-node, a Celery client
// for Node.js from the npm registry (docs/messages.md). One snapshot of each outcome kind:
// a good one (diagnosed), one whose deadline has passed (expired), one with a 4-step window
// (dead-lettered). Exit status 0 when each gets the outcome expected.
//
//   node diagnose.mjs --broker redis://127.0.0.1:6379/0 --backend redis://127.0.0.1:6379/1
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import celery from "celery-node";

const { values: options } = parseArgs({
  options: {
    broker: { type: "string", default: "redis://127.0.0.1:6379/0" },
    backend: { type: "string", default: "redis://127.0.0.1:6379/1" },
    queue: { type: "string", default: "gnn.snapshots" },
    timeout: { type: "string", default: "60" },
  },
});

// A few sensors of the built-in excavator; sensors of the spec left out are read as missing.
const SENSORS = { engine_speed: [950, 2050], engine_power: [5, 125], fuel_rate: [2, 36] };

function snapshot(id, steps, deadline) {
  const readings = {};
  for (const [sensor, [low, high]] of Object.entries(SENSORS)) {
    readings[sensor] = Array.from({ length: steps }, (_, t) =>
      Number((low + (high - low) * (0.5 + 0.1 * Math.sin(t / 5))).toFixed(3)));
  }
  return {
    snapshot_id: id,
    system_id: "example-excavator-1",
    spec: "excavator",
    window: {
      start: new Date(Date.now() - steps * 1000).toISOString(),
      sample_rate_hz: 1.0,
      readings,
    },
    deadline: deadline.toISOString(),
    correlation_id: `example-${id}`,
  };
}

function describe(result) {
  if (result.outcome === "diagnosed") {
    const d = result.diagnosis;
    const worst = d.components.reduce((a, b) => (b.health < a.health ? b : a));
    return `diagnosed: machine health ${d.machine_health.toFixed(2)}, worst component ` +
      `${worst.component_id} (${worst.status}), model ${d.model_version}`;
  }
  if (result.outcome === "expired") {
    return `expired: deadline ${result.expired.deadline} passed before it was computed`;
  }
  const letter = result.dead_letter;
  return `dead letter ${letter.reason} at ${letter.field}: ${letter.detail}`;
}

const client = celery.createClient(options.broker, options.backend, options.queue);
const run = randomUUID().slice(0, 8);
const now = Date.now();
const cases = [
  ["diagnosed", snapshot(`node-${run}-ok`, 60, new Date(now + 300_000))],
  ["expired", snapshot(`node-${run}-late`, 60, new Date(now - 60_000))],
  ["dead_lettered", snapshot(`node-${run}-short`, 4, new Date(now + 300_000))],
];
let failures = 0;
// The task id must be the snapshot id: sendTask takes it as its fourth argument.
const pending = cases.map(([expected, body]) => [
  expected,
  body.snapshot_id,
  client.sendTask("gnn.diagnose", [body], {}, body.snapshot_id),
]);
for (const [expected, id, pendingResult] of pending) {
  // get() resolves with the stored document's `result` (the outcome), or {} on timeout.
  const outcome = await pendingResult.get(Number(options.timeout) * 1000);
  if (!outcome || !outcome.outcome) {
    console.log(`${id}: no outcome within ${options.timeout} s (is a worker running?)`);
    failures += 1;
    continue;
  }
  console.log(`${id}: ${describe(outcome)}`);
  failures += outcome.outcome === expected ? 0 : 1;
}
await client.disconnect();
process.exit(failures ? 1 : 0);
