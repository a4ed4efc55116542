'use strict';

// A Node subscriber fleet for the load harness, whatever the transport: client.js subscribes over Socket.IO to the
// peer, grpc-client.js over gRPC to our edge. Both measure what tests/Pipeline.Benchmarks/SubscriberFleet.cs measures:
//   - latency = receive time − the send time the harness wrote into the post body ("{UTC ticks}|{author}|{sequence}",
//     FeedWorkload.PostOne), both read from the wall clock (DateTime.UtcNow there, timeOrigin + performance.now()
//     here), recorded in µs into an HDR histogram of range 1 µs…120 s with 3 significant digits;
//   - every post carries its author's sequence number: a jump is counted as gaps, a repeat as a duplicate;
//   - deliveries/s = deliveries ÷ (last delivery − start of posting).
//
// Prints "fleet live: N connections" once every subscriber is live. Commands on stdin (from the harness): "start"
// marks the start of posting, "expect N" says how many deliveries to wait for. It ends by itself: once the expected
// deliveries arrived, or --drain-seconds after "expect", or (without "expect") when --seconds have passed since
// "start" and nothing arrived for --quiet-seconds, and in any case --seconds + --drain-seconds after going live. The
// last line of output is a JSON summary.

const readline = require('node:readline');
const { parseArgs } = require('node:util');
const { performance } = require('node:perf_hooks');
const hdr = require('hdr-histogram-js');
const watchParent = require('./parent-watch');

const commonOptions = {
  users: { type: 'string', default: '1000' },
  first: { type: 'string', default: '0' },
  seconds: { type: 'string', default: '20' },
  'drain-seconds': { type: 'string', default: '60' },
  'quiet-seconds': { type: 'string', default: '3' },
  // The workload's authors (users ÷ fan-out) and the posts it sent before this fleet subscribed: together they
  // give each author's next sequence number, so that earlier posts are not counted as gaps.
  authors: { type: 'string', default: '1' },
  'posts-before': { type: 'string', default: '0' },
  'connect-batch': { type: 'string', default: '200' },
};

// .NET DateTime ticks (100 ns since 0001-01-01 UTC) at the Unix epoch.
const UNIX_EPOCH_TICKS = 621355968000000000n;
const HIGHEST_US = 120_000_000;
const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
const nowMs = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs a fleet. `transport.options` adds command-line options; `transport.open(userId, subscriber, args)` subscribes
 * one user and returns a function that closes it. The transport reports through the subscriber it is given:
 * `subscriber.live(bool)`, `subscriber.deliver(body)` (body undefined for an update that is not an added post),
 * `subscriber.error(text)`, `subscriber.reconnected()`, `subscriber.connectError(text)`.
 */
function runFleet(transport) {
  watchParent();
  const { values: args } = parseArgs({ options: { ...commonOptions, ...transport.options } });
  const users = Number(args.users);
  const first = Number(args.first);
  const seconds = Number(args.seconds);
  const drainSeconds = Number(args['drain-seconds']);
  const quietSeconds = Number(args['quiet-seconds']);
  const authors = Number(args.authors);
  const postsBefore = Number(args['posts-before']);

  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: HIGHEST_US, numberOfSignificantValueDigits: 3 });
  let deliveries = 0;
  let gaps = 0;
  let duplicates = 0;
  let malformed = 0;
  let reconnects = 0;
  let connectErrors = 0;
  let lastError = '';
  let firstDeliveryMs = 0;
  let lastDeliveryMs = 0;
  let startMs = 0;
  let cpuAtStart = null;
  let cpuAtLive = null;
  let liveMs = 0;
  let expected = -1;
  let expectedAtMs = 0;
  let liveCount = 0;

  // Posts go round-robin over the authors (post k is by author k mod A), so after P posts author a has sent
  // floor(P / A) + (a < P mod A ? 1 : 0) of them: that is its next sequence number.
  const nextSequenceOf = (author) => Math.floor(postsBefore / authors) + (author < postsBefore % authors ? 1 : 0);

  function record(subscriber, body) {
    const now = nowUs();
    const parts = typeof body === 'string' ? body.split('|') : null;
    if (!parts || parts.length !== 3) {
      malformed++;
      return;
    }
    const sentUs = Number((BigInt(parts[0]) - UNIX_EPOCH_TICKS) / 10n);
    histogram.recordValue(Math.min(HIGHEST_US, Math.max(1, now - sentUs)));
    deliveries++;
    lastDeliveryMs = now / 1000;
    if (firstDeliveryMs === 0) {
      firstDeliveryMs = lastDeliveryMs;
    }
    const author = Number(parts[1]);
    const sequence = Number(parts[2]);
    const next = subscriber.next.get(author) ?? nextSequenceOf(author);
    if (sequence > next) {
      gaps += sequence - next;
    } else if (sequence < next) {
      duplicates++;
      return;
    }
    subscriber.next.set(author, sequence + 1);
  }

  const subscribers = [];

  function open(index) {
    const subscriber = {
      userId: `u${first + index}`,
      next: new Map(),
      connected: false,
      everConnected: false,
      live(up) {
        if (up && !this.connected) {
          liveCount++;
          if (this.everConnected) {
            reconnects++;
          }
          this.everConnected = true;
        } else if (!up && this.connected) {
          liveCount--;
        }
        this.connected = up;
      },
      deliver(body) {
        record(this, body);
      },
      error(text) {
        lastError = text;
      },
      connectError(text) {
        connectErrors++;
        lastError = text;
      },
    };
    subscriber.close = transport.open(subscriber.userId, subscriber, args);
    subscribers.push(subscriber);
    return subscriber;
  }

  async function connectAll() {
    const batch = Number(args['connect-batch']);
    for (let i = 0; i < users; i += batch) {
      const opened = [];
      for (let j = i; j < Math.min(users, i + batch); j++) {
        opened.push(open(j));
      }
      // A batch at a time keeps the listen backlog and the handshakes in bounds.
      while (opened.some((s) => !s.connected)) {
        await sleep(10);
      }
    }
    let waited = 0;
    while (liveCount < users) {
      await sleep(50);
      if (++waited % 100 === 0) {
        console.log(`waiting: ${liveCount}/${users} subscribers live; last error: ${lastError}`);
      }
    }
  }

  function percentiles() {
    const us = (p) => histogram.getValueAtPercentile(p);
    return {
      p50Ms: us(50) / 1000,
      p90Ms: us(90) / 1000,
      p99Ms: us(99) / 1000,
      p999Ms: us(99.9) / 1000,
      maxMs: us(100) / 1000,
      // Same percentiles, in µs, as LatencyResult.HistogramPercentilesUs in the .NET harness.
      histogramPercentilesUs: [10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100].map(us),
    };
  }

  function finish(reason) {
    const windowStart = startMs || liveMs;
    const windowSeconds = lastDeliveryMs > windowStart ? (lastDeliveryMs - windowStart) / 1000 : 0;
    const cpu = process.cpuUsage(cpuAtStart ?? cpuAtLive ?? undefined);
    const pkg = require('./package.json');
    const summary = {
      summary: transport.name,
      reason,
      connections: transport.connections ? transport.connections(users, args) : users,
      reconnects,
      connectErrors,
      deliveries,
      expected,
      gaps,
      duplicates,
      malformed,
      startUnixMs: windowStart,
      firstDeliveryUnixMs: firstDeliveryMs,
      lastDeliveryUnixMs: lastDeliveryMs,
      deliveriesPerSecond: windowSeconds > 0 ? deliveries / windowSeconds : 0,
      ...percentiles(),
      // This process's CPU (all threads) from "start" (or from going live) to the end, over that wall time.
      coresUsed: (cpu.user + cpu.system) / 1e6 / Math.max(0.001, (nowMs() - windowStart) / 1000),
      stack: `node ${process.version}, ${transport.packages.map((name) => `${name} ${pkg.dependencies[name]}`).join(', ')}`,
      lastError,
    };
    for (const subscriber of subscribers) {
      subscriber.close();
    }
    console.log(JSON.stringify(summary));
    process.exit(0);
  }

  function watchStdin() {
    const lines = readline.createInterface({ input: process.stdin });
    lines.on('line', (line) => {
      const [command, value] = line.trim().split(/\s+/);
      if (command === 'start') {
        startMs = nowMs();
        cpuAtStart = process.cpuUsage();
      } else if (command === 'expect') {
        expected = Number(value);
        expectedAtMs = nowMs();
      } else if (command === 'stop') {
        finish('stopped');
      }
    });
    // The harness closing stdin is not a reason to stop: the timers below always end the run.
    lines.on('close', () => {});
  }

  async function main() {
    watchStdin();
    await connectAll();
    liveMs = nowMs();
    cpuAtLive = process.cpuUsage();
    console.log(`fleet live: ${users} subscribers`);
    const deadline = liveMs + (seconds + drainSeconds) * 1000;
    for (;;) {
      await sleep(50);
      const now = nowMs();
      if (expected >= 0 && deliveries + duplicates >= expected) {
        return finish('expected deliveries arrived');
      }
      if (expected >= 0 && now - expectedAtMs > drainSeconds * 1000) {
        return finish('drain timeout');
      }
      const since = startMs || liveMs;
      if (expected < 0 && now - since > seconds * 1000 && now - Math.max(lastDeliveryMs, since) > quietSeconds * 1000) {
        return finish('quiet after duration');
      }
      if (now > deadline) {
        return finish('deadline');
      }
    }
  }

  main().catch((error) => {
    console.error(`client failed: ${error.stack ?? error}`);
    process.exit(1);
  });
}

module.exports = { runFleet };
