'use strict';

// The Socket.IO peer of the feed edge: consumes feed.updates with kafkajs (read committed, from the latest offsets
// at start, like a live subscriber) and emits each update to the Socket.IO room of its recipient. Clients name their
// user in the handshake (auth.userId, or the userId query parameter) and are joined to that user's room.
//
//   node server.js --bootstrap 127.0.0.1:9092 --port 5100
//
// Prints "peer ready ..." once it listens and its consumer has fetched from every partition.
// Loopback only and no authentication: it is a benchmark peer, not a service.

const http = require('node:http');
const { parseArgs } = require('node:util');
const { randomUUID } = require('node:crypto');
const { Kafka, logLevel } = require('kafkajs');
const { Server } = require('socket.io');
const { decodeFeedUpdate } = require('./feed-update');
require('./parent-watch')();

const { values: args } = parseArgs({
  options: {
    bootstrap: { type: 'string', default: process.env.PEER_BOOTSTRAP ?? '127.0.0.1:9092' },
    port: { type: 'string', default: process.env.PEER_PORT ?? '5100' },
    topic: { type: 'string', default: 'feed.updates' },
    // The edge's consumer uses fetch.wait.max.ms = 20: the embedded mock broker answers an empty fetch only when it
    // expires, so this bounds the delivery latency the consumer adds. Same value here for the same job.
    'fetch-wait-ms': { type: 'string', default: '20' },
    'status-seconds': { type: 'string', default: '5' },
  },
});

const port = Number(args.port);
const room = (userId) => `user:${userId}`;
let emitted = 0;
let undecodable = 0;
let consumerReady = false;
let listening = false;

const httpServer = http.createServer((_, response) => {
  response.writeHead(404).end();
});
const io = new Server(httpServer, { transports: ['websocket'], serveClient: false });

io.on('connection', (socket) => {
  const userId = socket.handshake.auth?.userId ?? socket.handshake.query?.userId;
  if (typeof userId !== 'string' || userId.length === 0 || userId.length > 64) {
    socket.emit('feed-error', 'userId is required in the handshake auth');
    socket.disconnect(true);
    return;
  }
  socket.join(room(userId));
});

const kafka = new Kafka({
  clientId: 'peer-socketio',
  brokers: args.bootstrap.split(','),
  logLevel: logLevel.WARN,
});
const consumer = kafka.consumer({
  // A fresh group each run: no committed offsets, so the consumer starts from the latest ones.
  groupId: `peer-socketio-${randomUUID()}`,
  readUncommitted: false,
  maxWaitTimeInMs: Number(args['fetch-wait-ms']),
  minBytes: 1,
  sessionTimeout: 30000,
  heartbeatInterval: 3000,
});

function announceWhenReady() {
  if (consumerReady && listening) {
    console.log(`peer ready: listening on 127.0.0.1:${port}, consuming ${args.topic} from ${args.bootstrap}`);
  }
}

async function start() {
  await consumer.connect();
  await consumer.subscribe({ topics: [args.topic], fromBeginning: false });
  const { FETCH, GROUP_JOIN, CRASH } = consumer.events;
  let assigned = 0;
  consumer.on(GROUP_JOIN, (event) => {
    assigned = event.payload.memberAssignment[args.topic]?.length ?? 0;
  });
  // Offsets are resolved (latest) before the first fetch, so after it nothing produced later can be missed.
  const removeFetchListener = consumer.on(FETCH, () => {
    if (!consumerReady && assigned > 0) {
      consumerReady = true;
      removeFetchListener();
      announceWhenReady();
    }
  });
  consumer.on(CRASH, (event) => {
    console.error(`consumer crashed: ${event.payload.error?.message}`);
  });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: true,
    partitionsConsumedConcurrently: 1,
    eachBatch: async ({ batch }) => {
      for (const message of batch.messages) {
        let update;
        try {
          update = decodeFeedUpdate(message.value);
        } catch (error) {
          undecodable++;
          continue;
        }
        const recipient = message.key?.toString('utf8') ?? update.recipientId;
        update.partition = batch.partition;
        update.offset = message.offset;
        io.to(room(recipient)).emit('feed', update);
        emitted++;
      }
    },
  });

  httpServer.listen(port, '127.0.0.1', () => {
    listening = true;
    announceWhenReady();
  });
}

const status = setInterval(() => {
  console.log(`peer status: ${io.engine.clientsCount} connections, ${emitted} updates emitted, ${undecodable} undecodable`);
}, Number(args['status-seconds']) * 1000);

let stopping = false;
async function stop(signal) {
  if (stopping) {
    return;
  }
  stopping = true;
  clearInterval(status);
  console.log(`peer stopping (${signal}): ${emitted} updates emitted`);
  io.close();
  // The mock broker's LeaveGroup v3 response is shorter than kafkajs expects; kafkajs logs that and stops anyway.
  await consumer.disconnect().catch((error) => console.error(`consumer disconnect: ${error.message}`));
  process.exit(0);
}

process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

start().catch((error) => {
  console.error(`peer failed to start: ${error.stack ?? error}`);
  process.exit(1);
});
