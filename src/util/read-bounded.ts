import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

/** Why a file the inventory names cannot be read: not a regular file, or larger than allowed. */
export class BoundedReadError extends Error {}

/**
 * Reads a regular file of at most `maxBytes`: a device such as /dev/zero, a FIFO or a folder is
 * refused before any read, and a file is read no further than `maxBytes` + 1 bytes (one that grows
 * meanwhile too), so that a path in the inventory cannot exhaust memory or hang the run. `what`
 * names the file in messages.
 */
export function readBounded(path: string, maxBytes: number, what: string): Buffer {
  // O_NONBLOCK: opening a FIFO must not wait for a writer before fstat can refuse it.
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    if (!fstatSync(fd).isFile()) throw new BoundedReadError(`${what} ${path} is not a regular file`);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(64 * 1024);
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) return Buffer.concat(chunks, total);
      chunks.push(chunk.subarray(0, n));
      total += n;
      if (total > maxBytes) throw new BoundedReadError(`${what} ${path} is larger than ${maxBytes} bytes`);
    }
  } finally {
    closeSync(fd);
  }
}
