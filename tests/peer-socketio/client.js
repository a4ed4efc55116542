'use strict';

// Socket.IO subscriber fleet for the load harness (the peer's side): one socket.io-client connection (websocket
// transport only) per user u{first}…u{first+users−1}, measured as fleet.js describes.
//
//   node client.js --url http://127.0.0.1:5100 --users 1000 --seconds 20

const { io } = require('socket.io-client');
const { runFleet } = require('./fleet');

runFleet({
  name: 'peer-socketio-client',
  packages: ['socket.io-client'],
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:5100' },
  },
  open(userId, subscriber, args) {
    const socket = io(args.url, {
      transports: ['websocket'],
      auth: { userId },
      forceNew: true,
      reconnectionDelay: 20,
      reconnectionDelayMax: 1000,
      timeout: 20000,
    });
    socket.on('connect', () => subscriber.live(true));
    socket.on('disconnect', (reason) => {
      subscriber.live(false);
      subscriber.error(`disconnect: ${reason}`);
    });
    socket.on('connect_error', (error) => subscriber.connectError(`connect_error: ${error.message}`));
    socket.on('feed-error', (message) => subscriber.error(`feed-error: ${message}`));
    socket.on('feed', (update) => subscriber.deliver(update?.kind === 1 ? update?.post?.body : undefined));
    return () => socket.close();
  },
});
