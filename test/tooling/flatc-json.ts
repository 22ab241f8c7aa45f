/**
 * Decodes .pte bytes to JSON with `flatc` (the FlatBuffers compiler that the addon build
 * already requires), so tests check the writer's output with a decoder that is independent of
 * the writer and of the runtime's reader.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { repoRoot } from '../helpers.js';

export const hasFlatc = spawnSync('flatc', ['--version'], { stdio: 'ignore' }).status === 0;

const schemaPath = path.join(repoRoot, 'schema', 'program.fbs');

/** A decoded flatbuffer table: field names of `schema/program.fbs`, defaults included. */
export type JsonObject = Record<string, unknown>;

/** Decodes a program with `flatc --json --raw-binary --defaults-json`; throws with flatc's output on failure. */
export function decodeProgram(bytes: Uint8Array): JsonObject {
  const directory = mkdtempSync(path.join(tmpdir(), 'pte-json-'));
  try {
    const input = path.join(directory, 'program.pte');
    writeFileSync(input, bytes);
    const result = spawnSync('flatc', ['--json', '--strict-json', '--raw-binary', '--defaults-json', '-o', directory, schemaPath, '--', input], {
      encoding: 'utf8',
    });
    if (result.status !== 0) {
      throw new Error(`flatc failed to decode the program (exit ${result.status}): ${result.stderr}${result.stdout}`);
    }
    return JSON.parse(readFileSync(path.join(directory, 'program.json'), 'utf8')) as JsonObject;
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

/** Removes `container_meta_type` from every plan: upstream's pytree strings are not format structure. */
export function withoutContainerMeta(program: JsonObject): JsonObject {
  const copy = structuredClone(program);
  for (const plan of (copy.execution_plan as JsonObject[] | undefined) ?? []) delete plan.container_meta_type;
  return copy;
}

/** The fields of an extended header, read from the bytes after the identifier. */
export interface ExtendedHeader {
  length: number;
  programSize: number;
  segmentBaseOffset: number;
  /** Present only in the 32-byte form. */
  segmentDataSize: number | undefined;
}

/** Reads the extended header at byte 8; returns null when the `eh00` magic is absent. */
export function readExtendedHeader(bytes: Uint8Array): ExtendedHeader | null {
  if (bytes.length < 32) return null;
  if (new TextDecoder().decode(bytes.subarray(8, 12)) !== 'eh00') return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getUint32(12, true);
  return {
    length,
    programSize: Number(view.getBigUint64(16, true)),
    segmentBaseOffset: Number(view.getBigUint64(24, true)),
    segmentDataSize: length >= 32 ? Number(view.getBigUint64(32, true)) : undefined,
  };
}
