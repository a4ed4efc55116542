'use strict';

// gRPC subscriber fleet for the load harness (our side, with the same Node runtime as the peer's fleet): one
// FeedService.Subscribe stream per user u{first}…u{first+users−1}, --per-connection streams on each HTTP/2
// connection, measured as fleet.js describes. On any stream end it resubscribes with its last cursor, as a real
// client does (and as SubscriberFleet.cs does).
//
//   FEED_BEARER_TOKEN=<bearer> node grpc-client.js --address 127.0.0.1:5001 --users 1000 --per-connection 1000

const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { runFleet } = require('./fleet');

let FeedService = null;
const clients = [];

function clientFor(index, args) {
  const group = Math.floor(index / Number(args['per-connection']));
  if (!clients[group]) {
    if (!FeedService) {
      const protos = path.resolve(args.protos);
      const definition = protoLoader.loadSync(path.join(protos, 'feed/v1/feed_service.proto'), {
        includeDirs: [protos],
        longs: Number,
        enums: Number,
        oneofs: true,
      });
      FeedService = grpc.loadPackageDefinition(definition).feed.v1.FeedService;
    }
    clients[group] = new FeedService(args.address, grpc.credentials.createInsecure(), {
      // A channel of its own, so that each group of --per-connection streams is one HTTP/2 connection (channels with
      // the same target and options share one otherwise).
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': 1 << 20,
      // Reconnect as a client that wants a fast resume would (SubscriberFleet.cs uses the same backoff).
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
      'grpc.keepalive_time_ms': 60000,
    });
  }
  return clients[group];
}

let opened = 0;

runFleet({
  name: 'node-grpc-client',
  packages: ['@grpc/grpc-js', '@grpc/proto-loader'],
  options: {
    address: { type: 'string', default: '127.0.0.1:5001' },
    // The bearer token: from FEED_BEARER_TOKEN rather than the command line, which any user's ps can read.
    token: { type: 'string', default: process.env.FEED_BEARER_TOKEN ?? '' },
    'per-connection': { type: 'string', default: '1000' },
    protos: { type: 'string', default: path.join(__dirname, '..', '..', 'protos') },
  },
  connections: (users, args) => Math.ceil(users / Number(args['per-connection'])),
  open(userId, subscriber, args) {
    const client = clientFor(opened++, args);
    const metadata = new grpc.Metadata();
    if (args.token) {
      metadata.set('authorization', `Bearer ${args.token}`);
    }
    let cursor = '';
    let call = null;
    let closed = false;
    const subscribe = () => {
      // waitForReady: while the edge is away the call waits for the channel to reconnect (see SubscriberFleet.cs).
      call = client.Subscribe({ userId, cursor }, metadata, { waitForReady: true });
      call.on('metadata', () => subscriber.live(true));
      call.on('data', (event) => {
        cursor = event.cursor;
        if (event.event === 'added') {
          subscriber.deliver(event.added?.post?.body);
        }
      });
      call.on('error', (error) => subscriber.error(`${grpc.status[error.code] ?? error.code}: ${error.details}`));
      call.on('status', () => {
        subscriber.live(false);
        if (!closed) {
          setTimeout(subscribe, 20 + Math.random() * 80);
        }
      });
    };
    subscribe();
    return () => {
      closed = true;
      call?.cancel();
    };
  },
});
