// The per-call workspace limit of the XnnpackBackend (LoadOptions.maxMemory): a graph whose
// intermediates or scratch space would exceed it fails with ERR_OUT_OF_MEMORY before
// allocating, instead of exhausting the machine.
import { describe, expect, it } from 'vitest';

import { Program } from '../src/program.js';
import { expectErrorCode } from './helpers.js';
import { buildGraphProgram } from './xnnpack-harness.js';
import { XNN_INVALID_VALUE_ID, XnnGraphBuilder } from './tooling/xnnpack-writer.js';

/**
 * A 1x1 convolution whose padding makes a [1, 2001, 2001, 4] intermediate (64 MB of float32),
 * sliced back to the 2x2 pixels around the input's position, so the program's own memory
 * plan stays small and only the delegate's workspace is large.
 */
function paddedConvolution(): XnnGraphBuilder {
  const graph = new XnnGraphBuilder();
  const x = graph.input([1, 1, 1, 4]);
  const filter = graph.constant([4, 1, 1, 4], new Float32Array(16).fill(0.5));
  const middle = graph.intermediate([1, 2001, 2001, 4]);
  const y = graph.output([1, 2, 2, 4]);
  const padding = { paddingTop: 1000, paddingRight: 1000, paddingBottom: 1000, paddingLeft: 1000 };
  graph.conv('XNNConv2d', { ...padding, kernelHeight: 1, kernelWidth: 1, groups: 1, groupInputChannels: 4, groupOutputChannels: 4 }, x, filter, XNN_INVALID_VALUE_ID, middle);
  graph.slice([0, 999, 999, 0], [1, 2, 2, 4], middle, y);
  return graph;
}

describe('xnnpack workspace limit', () => {
  it('rejects a call above maxMemory', async () => {
    const program = await Program.load(buildGraphProgram(paddedConvolution()), { maxMemory: 16 * 2 ** 20 });
    const input = { dtype: 'float32' as const, shape: [1, 1, 1, 4], data: new Float32Array(4).fill(1) };
    const error = await expectErrorCode(program.execute('forward', [input]), 'ERR_OUT_OF_MEMORY');
    expect(error.message).toContain('limit');
    program.dispose();
  });

  it('runs the same call within the default limit', async () => {
    const program = await Program.load(buildGraphProgram(paddedConvolution()));
    const input = { dtype: 'float32' as const, shape: [1, 1, 1, 4], data: new Float32Array(4).fill(1) };
    const [output] = await program.execute('forward', [input]);
    program.dispose();
    const data = (output as { data: Float32Array }).data;
    // Pixel (1000, 1000) sees the input: 4 channels x 1 x 0.5 = 2 in each output channel.
    // Its neighbours in the slice lie in the padding and give 0.
    expect(Array.from(data.slice(12, 16))).toEqual([2, 2, 2, 2]);
    expect(Array.from(data.slice(0, 12))).toEqual(new Array(12).fill(0));
  });
});
