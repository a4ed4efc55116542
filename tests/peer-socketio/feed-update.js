'use strict';

// Decodes feed.v1.FeedUpdate (protos/feed/v1/events.proto) from its protobuf wire bytes. Five fields and one nested
// message do not justify a protobuf runtime; unknown fields are skipped, as any protobuf reader must.

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH = 2;
const WIRE_FIXED32 = 5;

class Reader {
  constructor(buffer, start = 0, end = buffer.length) {
    this.buffer = buffer;
    this.pos = start;
    this.end = end;
  }

  done() {
    return this.pos >= this.end;
  }

  // Varints up to 2^53 decode exactly (Unix-millisecond timestamps, enums, lengths); larger ones lose precision.
  varint() {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) {
        throw new Error('truncated varint');
      }
      const byte = this.buffer[this.pos++];
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        return value;
      }
      scale *= 128;
    }
    throw new Error('varint longer than 10 bytes');
  }

  bytes() {
    const length = this.varint();
    const start = this.pos;
    this.pos += length;
    if (this.pos > this.end) {
      throw new Error('truncated length-delimited field');
    }
    return [start, this.pos];
  }

  string() {
    const [start, end] = this.bytes();
    return this.buffer.toString('utf8', start, end);
  }

  skip(wireType) {
    switch (wireType) {
      case WIRE_VARINT: this.varint(); break;
      case WIRE_FIXED64: this.pos += 8; break;
      case WIRE_LENGTH: this.bytes(); break;
      case WIRE_FIXED32: this.pos += 4; break;
      default: throw new Error(`unsupported wire type ${wireType}`);
    }
  }
}

function decodePost(reader) {
  const post = { postId: '', authorId: '', body: '', createdAtMs: 0 };
  while (!reader.done()) {
    const tag = reader.varint();
    const field = Math.floor(tag / 8);
    const wireType = tag & 7;
    if (field === 1 && wireType === WIRE_LENGTH) post.postId = reader.string();
    else if (field === 2 && wireType === WIRE_LENGTH) post.authorId = reader.string();
    else if (field === 3 && wireType === WIRE_LENGTH) post.body = reader.string();
    else if (field === 4 && wireType === WIRE_VARINT) post.createdAtMs = reader.varint();
    else reader.skip(wireType);
  }
  return post;
}

/** FeedUpdate as a plain object: { recipientId, kind, cause, post, sourceOccurredAtMs } (enums as numbers). */
function decodeFeedUpdate(buffer) {
  const reader = new Reader(buffer);
  const update = { recipientId: '', kind: 0, cause: 0, post: null, sourceOccurredAtMs: 0 };
  while (!reader.done()) {
    const tag = reader.varint();
    const field = Math.floor(tag / 8);
    const wireType = tag & 7;
    if (field === 1 && wireType === WIRE_LENGTH) update.recipientId = reader.string();
    else if (field === 2 && wireType === WIRE_VARINT) update.kind = reader.varint();
    else if (field === 3 && wireType === WIRE_VARINT) update.cause = reader.varint();
    else if (field === 4 && wireType === WIRE_LENGTH) {
      const [start, end] = reader.bytes();
      update.post = decodePost(new Reader(buffer, start, end));
    } else if (field === 5 && wireType === WIRE_VARINT) update.sourceOccurredAtMs = reader.varint();
    else reader.skip(wireType);
  }
  return update;
}

module.exports = { decodeFeedUpdate, FEED_UPDATE_KIND_ADDED: 1, FEED_UPDATE_KIND_REMOVED: 2 };
