// KafkaJS against a Runnel broker or cluster, driven by e2e/test_kafkajs.py:
//
//   node e2e/kafkajs/scenario.js BOOTSTRAP TOPIC GROUP COUNT REPLICATION_FACTOR
//
// Creates TOPIC (3 partitions) with the admin client, produces COUNT keyed records with an
// idempotent acks=all producer (half of them gzip-compressed), consumes them all in the consumer
// group GROUP (committing), then reads the group's committed offsets and the topic's offsets
// through the admin client. Prints one JSON object on stdout for the test to check; any failure
// exits non-zero with the error on stderr. KafkaJS's own logs go to stderr.

"use strict";

const { Kafka, CompressionTypes, logLevel } = require("kafkajs");

const [bootstrap, topic, groupId, countArg, rfArg] = process.argv.slice(2);
const count = Number(countArg);
const replicationFactor = Number(rfArg);
const PARTITIONS = 3;
// Generous: a debug build on a busy 2-core machine.
const DEADLINE_MS = 120000;

const kafka = new Kafka({
  clientId: "runnel-e2e-kafkajs",
  brokers: bootstrap.split(","),
  logLevel: logLevel.WARN,
  logCreator: () => ({ level, log }) =>
    process.stderr.write(`kafkajs ${level}: ${log.message} ${JSON.stringify(log)}\n`),
  retry: { retries: 10, initialRetryTime: 200 },
});

function withDeadline(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish in ${DEADLINE_MS} ms`)), DEADLINE_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions: PARTITIONS, replicationFactor }],
    waitForLeaders: true,
  });

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const acks = [];
  const half = Math.floor(count / 2);
  for (const [from, to, compression] of [
    [0, half, CompressionTypes.None],
    [half, count, CompressionTypes.GZIP],
  ]) {
    // Batches of 50 so one request carries records for every partition.
    for (let start = from; start < to; start += 50) {
      const messages = [];
      for (let i = start; i < Math.min(start + 50, to); i++) {
        messages.push({ key: `k${i % 16}`, value: `v${i}`, headers: { seq: String(i) } });
      }
      const result = await producer.send({ topic, acks: -1, compression, messages });
      for (const r of result) acks.push({ partition: r.partition, baseOffset: Number(r.baseOffset), errorCode: r.errorCode });
    }
  }
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, rebalanceTimeout: 20000 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const consumed = [];
  let resolveAll;
  const all = new Promise((resolve) => { resolveAll = resolve; });
  await consumer.run({
    autoCommit: true,
    eachMessage: async ({ partition, message }) => {
      consumed.push({
        partition,
        offset: Number(message.offset),
        key: message.key.toString(),
        value: message.value.toString(),
        seq: message.headers.seq.toString(),
      });
      if (consumed.length >= count) resolveAll();
    },
  });
  await withDeadline(all, `consuming ${count} records`);
  // Commit what was consumed before leaving (autoCommit commits on an interval).
  await consumer.stop();
  await consumer.disconnect();

  const committed = await admin.fetchOffsets({ groupId, topics: [topic] });
  const ends = await admin.fetchTopicOffsets(topic);
  const groups = await admin.describeGroups([groupId]);
  await admin.disconnect();

  process.stdout.write(JSON.stringify({
    created,
    acks,
    consumed,
    committed: committed[0].partitions.map((p) => ({ partition: p.partition, offset: Number(p.offset) })),
    ends: ends.map((p) => ({ partition: p.partition, high: Number(p.high), low: Number(p.low) })),
    groupState: groups.groups[0].state,
  }) + "\n");
}

main().catch((err) => {
  process.stderr.write(`kafkajs scenario failed: ${err.stack || err}\n`);
  process.exit(1);
});
