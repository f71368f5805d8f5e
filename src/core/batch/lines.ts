/**
 * Splitting a JSONL byte stream into lines without holding the file: each line carries its physical line number
 * and the byte offset just after it, so a fan-out checkpoint can resume reading mid-file with a ranged download.
 */

export interface JsonlLine {
  /** 1-based physical line number in the file. */
  lineNo: number;
  /** Text without the line break (a trailing \r is dropped). */
  text: string;
  /** Byte offset in the file just after this line's line break. */
  endByte: number;
}

/** Longest single line accepted, bytes (a request body is at most a few MB). */
const MAX_LINE_BYTES = 32 * 1024 * 1024;

/**
 * Yields the non-blank lines of `chunks`. `startByte`/`startLineNo` describe where the stream begins in the file
 * (a resumed read). Throws when a line exceeds MAX_LINE_BYTES.
 */
export async function* jsonlLines(chunks: AsyncIterable<Uint8Array>, startByte = 0, startLineNo = 1): AsyncGenerator<JsonlLine> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let offset = startByte; // file offset of the first byte of pending
  let lineNo = startLineNo;
  const emit = (buf: Buffer, end: number): JsonlLine | undefined => {
    let text = buf.toString('utf8');
    if (text.endsWith('\r')) text = text.slice(0, -1);
    const line = { lineNo, text, endByte: end };
    lineNo += 1;
    return text.trim() === '' ? undefined : line;
  };
  for await (const raw of chunks) {
    const chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) break;
      const piece = chunk.subarray(start, nl);
      const buf = pendingBytes ? Buffer.concat([...pending, piece]) : piece;
      const end = offset + pendingBytes + piece.length + 1;
      pending = [];
      pendingBytes = 0;
      offset = end;
      const line = emit(buf, end);
      if (line) yield line;
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      pending.push(Buffer.from(rest)); // copy: the producer may reuse its buffer
      pendingBytes += rest.length;
      if (pendingBytes > MAX_LINE_BYTES) throw new Error(`line ${lineNo} is longer than ${MAX_LINE_BYTES} bytes`);
    }
  }
  if (pendingBytes) {
    const line = emit(Buffer.concat(pending), offset + pendingBytes);
    if (line) yield line;
  }
}
