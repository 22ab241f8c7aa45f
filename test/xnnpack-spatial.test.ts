// Conformance of the XnnpackBackend's NHWC nodes (Conv2d, DepthwiseConv2d, ConvTranspose2d,
// average, max, global and argmax pooling, StaticResizeBilinear2D) against float64
// references written here. The references use XNNPACK's filter layouts: [OC, KH, KW,
// IC/groups] for convolutions and deconvolutions, [1, KH, KW, OC] for depthwise ones.
import { describe, expect, it } from 'vitest';

import { expectAllClose } from './helpers.js';
import { Program, type Tensor } from '../src/program.js';
import { Accumulator, FLOAT32_U, buildGraphProgram, expectShape, expectWithin, makeRng, product, randomFloats, runGraph } from './xnnpack-harness.js';
import { XNN_INVALID_VALUE_ID, XnnGraphBuilder, type ConvParams, type NodeOptions, type PoolingParams } from './tooling/xnnpack-writer.js';

interface ConvCase {
  name: string;
  input: [number, number, number, number];
  outChannels: number;
  params: Omit<ConvParams, 'groupInputChannels' | 'groupOutputChannels'>;
  bias?: boolean;
}

function windowOutput(size: number, before: number, after: number, kernel: number, stride: number, dilation: number): number {
  return Math.floor((size + before + after - ((kernel - 1) * dilation + 1)) / stride) + 1;
}

function clampWith(options: NodeOptions | undefined): (value: number) => number {
  const low = options?.outputMinMax?.min ?? -Infinity;
  const high = options?.outputMinMax?.max ?? Infinity;
  return (value) => Math.min(Math.max(value, low), high);
}

/**
 * Runs Conv2d (or DepthwiseConv2d when `depthwise`) and compares with a direct float64
 * convolution. With `calls` > 1 that many calls with different inputs run at once, so that the
 * program batches them (one product over every call's im2col rows).
 */
async function checkConvolution(spec: ConvCase, seed: number, depthwise: boolean, options?: NodeOptions, calls = 1): Promise<void> {
  const [n, h, w, c] = spec.input;
  const p = spec.params;
  const groups = depthwise ? c : (p.groups ?? 1);
  const groupIn = depthwise ? 1 : c / groups;
  const groupOut = spec.outChannels / groups;
  const [pt, pr, pb, pl] = [p.paddingTop ?? 0, p.paddingRight ?? 0, p.paddingBottom ?? 0, p.paddingLeft ?? 0];
  const [sh, sw, dh, dw] = [p.subsamplingHeight ?? 1, p.subsamplingWidth ?? 1, p.dilationHeight ?? 1, p.dilationWidth ?? 1];
  const [kh, kw] = [p.kernelHeight, p.kernelWidth];
  const oh = windowOutput(h, pt, pb, kh, sh, dh);
  const ow = windowOutput(w, pl, pr, kw, sw, dw);
  const oc = spec.outChannels;

  const rng = makeRng(seed);
  const inputs = Array.from({ length: calls }, () => randomFloats(rng, n * h * w * c));
  const filterDims = depthwise ? [1, kh, kw, oc] : [oc, kh, kw, groupIn];
  const filter = randomFloats(rng, product(filterDims));
  const bias = randomFloats(rng, oc);
  const weight = (o: number, ky: number, kx: number, i: number): number =>
    depthwise ? filter[(ky * kw + kx) * oc + o]! : filter[((o * kh + ky) * kw + kx) * groupIn + i]!;

  const graph = new XnnGraphBuilder();
  const x = graph.input(spec.input);
  const f = graph.constant(filterDims, filter);
  const b = spec.bias === false ? XNN_INVALID_VALUE_ID : graph.constant([oc], bias);
  const outDims = [n, oh, ow, oc];
  const y = graph.output(outDims);
  graph.conv(depthwise ? 'XNNDepthwiseConv2d' : 'XNNConv2d', { ...p, groups, groupInputChannels: groupIn, groupOutputChannels: groupOut }, x, f, b, y, options);
  let outputs: Tensor[];
  if (calls === 1) {
    outputs = await runGraph(graph, inputs);
  } else {
    const program = await Program.load(buildGraphProgram(graph), { threads: 2, maxBatch: calls });
    try {
      const results = await Promise.all(inputs.map((data) => program.execute('forward', [{ dtype: 'float32', shape: spec.input, data }])));
      outputs = results.map(([output]) => output as Tensor);
    } finally {
      program.dispose();
    }
  }
  const checkOutput = (input: Float32Array, output: Tensor | undefined): void => {
    const sums = new Accumulator(n * oh * ow * oc);
    for (let bi = 0; bi < n; bi++) {
      for (let oy = 0; oy < oh; oy++) {
        for (let ox = 0; ox < ow; ox++) {
          for (let o = 0; o < oc; o++) {
            const target = ((bi * oh + oy) * ow + ox) * oc + o;
            if (spec.bias !== false) sums.add(target, bias[o]!);
            const g = Math.floor(o / groupOut);
            for (let ky = 0; ky < kh; ky++) {
              const iy = oy * sh + ky * dh - pt;
              if (iy < 0 || iy >= h) continue;
              for (let kx = 0; kx < kw; kx++) {
                const ix = ox * sw + kx * dw - pl;
                if (ix < 0 || ix >= w) continue;
                for (let i = 0; i < groupIn; i++) {
                  sums.add(target, input[((bi * h + iy) * w + ix) * c + g * groupIn + i]! * weight(o, ky, kx, i));
                }
              }
            }
          }
        }
      }
    }
    const clamp = clampWith(options);
    expectShape(output, outDims);
    expectWithin(output!.data as Float32Array, sums.values.map(clamp), sums.bound(kh * kw * groupIn + 1), 'convolution output');
  };
  inputs.forEach((input, call) => checkOutput(input, outputs[call]));
}

describe('Conv2d', () => {
  const cases: ConvCase[] = [
    { name: '1x1 kernel', input: [1, 4, 5, 3], outChannels: 7, params: { kernelHeight: 1, kernelWidth: 1 } },
    { name: '3x3 no padding', input: [1, 7, 7, 3], outChannels: 5, params: { kernelHeight: 3, kernelWidth: 3 } },
    { name: '3x3 padding 1', input: [2, 7, 5, 4], outChannels: 6, params: { kernelHeight: 3, kernelWidth: 3, paddingTop: 1, paddingRight: 1, paddingBottom: 1, paddingLeft: 1 } },
    { name: 'asymmetric padding', input: [1, 6, 9, 2], outChannels: 3, params: { kernelHeight: 2, kernelWidth: 4, paddingTop: 2, paddingRight: 0, paddingBottom: 1, paddingLeft: 3 } },
    { name: 'stride 2', input: [1, 13, 13, 3], outChannels: 8, params: { kernelHeight: 3, kernelWidth: 3, subsamplingHeight: 2, subsamplingWidth: 2, paddingTop: 1, paddingLeft: 1 } },
    { name: 'stride 3 by 1', input: [1, 10, 7, 2], outChannels: 4, params: { kernelHeight: 2, kernelWidth: 3, subsamplingHeight: 3, subsamplingWidth: 1 } },
    { name: 'dilation 2', input: [1, 9, 11, 3], outChannels: 4, params: { kernelHeight: 3, kernelWidth: 3, dilationHeight: 2, dilationWidth: 2, paddingTop: 2, paddingBottom: 2, paddingLeft: 2, paddingRight: 2 } },
    { name: 'dilation 3 by 1', input: [1, 11, 6, 2], outChannels: 3, params: { kernelHeight: 2, kernelWidth: 2, dilationHeight: 3, dilationWidth: 1 } },
    { name: 'groups 2', input: [1, 6, 6, 4], outChannels: 6, params: { kernelHeight: 3, kernelWidth: 3, groups: 2, paddingTop: 1, paddingLeft: 1, paddingBottom: 1, paddingRight: 1 } },
    { name: 'groups 3 stride 2', input: [2, 7, 9, 9], outChannels: 12, params: { kernelHeight: 3, kernelWidth: 2, groups: 3, subsamplingHeight: 2, subsamplingWidth: 2 } },
    { name: 'groups 2 without bias', input: [1, 5, 5, 6], outChannels: 4, params: { kernelHeight: 1, kernelWidth: 3, groups: 2 }, bias: false },
    { name: 'without bias', input: [1, 5, 4, 3], outChannels: 2, params: { kernelHeight: 2, kernelWidth: 2 }, bias: false },
    { name: 'kernel as large as input', input: [1, 3, 5, 2], outChannels: 3, params: { kernelHeight: 3, kernelWidth: 5 } },
    { name: 'odd channels 13 to 31', input: [1, 5, 7, 13], outChannels: 31, params: { kernelHeight: 3, kernelWidth: 3, paddingTop: 1, paddingLeft: 1, paddingBottom: 1, paddingRight: 1 } },
    { name: 'single pixel', input: [1, 1, 1, 1], outChannels: 1, params: { kernelHeight: 1, kernelWidth: 1 } },
    { name: 'many pixels', input: [1, 33, 35, 3], outChannels: 17, params: { kernelHeight: 3, kernelWidth: 3, paddingTop: 1, paddingLeft: 1, paddingBottom: 1, paddingRight: 1 } },
  ];
  cases.forEach((spec, index) => {
    it(spec.name, async () => {
      await checkConvolution(spec, 2000 + index, false);
    });
  });

  it('clamps with output_min_max', async () => {
    await checkConvolution({ name: '', input: [1, 5, 5, 3], outChannels: 4, params: { kernelHeight: 3, kernelWidth: 3 } }, 2050, false, { outputMinMax: { min: 0, max: 0.5 } });
  });

  it('batches concurrent calls of two images each, with a clamp', async () => {
    const spec: ConvCase = { name: '', input: [2, 9, 8, 3], outChannels: 37, params: { kernelHeight: 3, kernelWidth: 2, subsamplingHeight: 2, paddingTop: 1 } };
    await checkConvolution(spec, 2051, false, { outputMinMax: { min: -0.5, max: 0.75 } }, 3);
  });
});

describe('DepthwiseConv2d', () => {
  const cases: ConvCase[] = [
    { name: 'multiplier 1 3x3', input: [1, 7, 6, 5], outChannels: 5, params: { kernelHeight: 3, kernelWidth: 3, paddingTop: 1, paddingLeft: 1, paddingBottom: 1, paddingRight: 1 } },
    { name: 'multiplier 2', input: [1, 6, 7, 3], outChannels: 6, params: { kernelHeight: 3, kernelWidth: 3 } },
    { name: 'multiplier 2 stride 2', input: [2, 9, 8, 4], outChannels: 8, params: { kernelHeight: 3, kernelWidth: 3, subsamplingHeight: 2, subsamplingWidth: 2, paddingTop: 1, paddingLeft: 1 } },
    { name: 'dilation 2', input: [1, 9, 9, 3], outChannels: 3, params: { kernelHeight: 3, kernelWidth: 3, dilationHeight: 2, dilationWidth: 2, paddingTop: 2, paddingLeft: 2, paddingBottom: 2, paddingRight: 2 } },
    { name: '5x5 with 13 channels', input: [1, 11, 10, 13], outChannels: 13, params: { kernelHeight: 5, kernelWidth: 5, paddingTop: 2, paddingLeft: 2, paddingBottom: 2, paddingRight: 2 } },
    { name: 'without bias', input: [1, 4, 4, 2], outChannels: 4, params: { kernelHeight: 2, kernelWidth: 3 }, bias: false },
  ];
  cases.forEach((spec, index) => {
    it(spec.name, async () => {
      await checkConvolution(spec, 2100 + index, true);
    });
  });

  it('clamps with output_min_max', async () => {
    await checkConvolution({ name: '', input: [1, 5, 5, 3], outChannels: 6, params: { kernelHeight: 3, kernelWidth: 3 } }, 2150, true, { outputMinMax: { min: -0.2, max: 0.2 } });
  });
});

interface DeconvCase {
  name: string;
  input: [number, number, number, number];
  outChannels: number;
  params: Omit<ConvParams, 'groupInputChannels' | 'groupOutputChannels'>;
}

describe('ConvTranspose2d', () => {
  const cases: DeconvCase[] = [
    { name: '2x2 stride 2', input: [1, 3, 4, 2], outChannels: 3, params: { kernelHeight: 2, kernelWidth: 2, subsamplingHeight: 2, subsamplingWidth: 2 } },
    { name: '3x3 stride 2 padding 1', input: [1, 4, 5, 3], outChannels: 2, params: { kernelHeight: 3, kernelWidth: 3, subsamplingHeight: 2, subsamplingWidth: 2, paddingTop: 1, paddingLeft: 1, paddingBottom: 1, paddingRight: 1 } },
    { name: 'adjustment 1', input: [2, 3, 3, 2], outChannels: 4, params: { kernelHeight: 3, kernelWidth: 3, subsamplingHeight: 2, subsamplingWidth: 2, paddingTop: 1, paddingLeft: 1, paddingBottom: 1, paddingRight: 1, adjustmentHeight: 1, adjustmentWidth: 1 } },
    { name: 'stride 1 no padding', input: [1, 5, 4, 3], outChannels: 5, params: { kernelHeight: 2, kernelWidth: 3 } },
    { name: 'asymmetric stride', input: [1, 3, 5, 2], outChannels: 3, params: { kernelHeight: 3, kernelWidth: 2, subsamplingHeight: 3, subsamplingWidth: 1, paddingTop: 1, adjustmentHeight: 2 } },
    { name: 'dilation 2', input: [1, 3, 3, 2], outChannels: 2, params: { kernelHeight: 2, kernelWidth: 2, dilationHeight: 2, dilationWidth: 2, subsamplingHeight: 2, subsamplingWidth: 2 } },
    { name: 'groups 2', input: [1, 3, 4, 4], outChannels: 6, params: { kernelHeight: 3, kernelWidth: 3, subsamplingHeight: 2, subsamplingWidth: 2, paddingTop: 1, paddingLeft: 1, groups: 2 } },
  ];
  cases.forEach((spec, index) => {
    it(spec.name, async () => {
      const [n, h, w, c] = spec.input;
      const p = spec.params;
      const groups = p.groups ?? 1;
      const groupIn = c / groups;
      const groupOut = spec.outChannels / groups;
      const oc = spec.outChannels;
      const [pt, pr, pb, pl] = [p.paddingTop ?? 0, p.paddingRight ?? 0, p.paddingBottom ?? 0, p.paddingLeft ?? 0];
      const [sh, sw, dh, dw] = [p.subsamplingHeight ?? 1, p.subsamplingWidth ?? 1, p.dilationHeight ?? 1, p.dilationWidth ?? 1];
      const [kh, kw] = [p.kernelHeight, p.kernelWidth];
      const oh = (h - 1) * sh + (kh - 1) * dh + 1 - pt - pb + (p.adjustmentHeight ?? 0);
      const ow = (w - 1) * sw + (kw - 1) * dw + 1 - pl - pr + (p.adjustmentWidth ?? 0);

      const rng = makeRng(2200 + index);
      const input = randomFloats(rng, n * h * w * c);
      const filter = randomFloats(rng, oc * kh * kw * groupIn);
      const bias = randomFloats(rng, oc);
      const graph = new XnnGraphBuilder();
      const x = graph.input(spec.input);
      const f = graph.constant([oc, kh, kw, groupIn], filter);
      const b = graph.constant([oc], bias);
      const y = graph.output([n, oh, ow, oc]);
      graph.conv('XNNConvTranspose2d', { ...p, groups, groupInputChannels: groupIn, groupOutputChannels: groupOut }, x, f, b, y);
      const [output] = await runGraph(graph, [input]);

      // Scatter form: input pixel (iy, ix) and kernel tap (ky, kx) add to output
      // (iy·stride + ky·dilation − padding_top, ...), if that lies inside the output.
      const sums = new Accumulator(n * oh * ow * oc);
      for (let bi = 0; bi < n; bi++) {
        for (let o = 0; o < oh * ow * oc; o++) sums.add(bi * oh * ow * oc + o, bias[o % oc]!);
        for (let iy = 0; iy < h; iy++) {
          for (let ix = 0; ix < w; ix++) {
            for (let ky = 0; ky < kh; ky++) {
              const ty = iy * sh + ky * dh - pt;
              if (ty < 0 || ty >= oh) continue;
              for (let kx = 0; kx < kw; kx++) {
                const tx = ix * sw + kx * dw - pl;
                if (tx < 0 || tx >= ow) continue;
                for (let o = 0; o < oc; o++) {
                  const g = Math.floor(o / groupOut);
                  for (let i = 0; i < groupIn; i++) {
                    const value = input[((bi * h + iy) * w + ix) * c + g * groupIn + i]!;
                    sums.add(((bi * oh + ty) * ow + tx) * oc + o, value * filter[((o * kh + ky) * kw + kx) * groupIn + i]!);
                  }
                }
              }
            }
          }
        }
      }
      expectShape(output, [n, oh, ow, oc]);
      expectWithin(output!.data as Float32Array, sums.values, sums.bound(kh * kw * groupIn + 1), 'ConvTranspose2d output');
    });
  });
});

interface PoolingCase {
  name: string;
  input: [number, number, number, number];
  params: PoolingParams;
}

/** Float64 average or max pooling; averages divide by the window cells inside the input. */
function poolingReference(input: Float32Array, dims: number[], p: PoolingParams, average: boolean) {
  const [n, h, w, c] = dims as [number, number, number, number];
  const [pt, pr, pb, pl] = [p.paddingTop ?? 0, p.paddingRight ?? 0, p.paddingBottom ?? 0, p.paddingLeft ?? 0];
  const [sh, sw, dh, dw] = [p.strideHeight ?? 1, p.strideWidth ?? 1, p.dilationHeight ?? 1, p.dilationWidth ?? 1];
  const oh = windowOutput(h, pt, pb, p.poolingHeight, sh, dh);
  const ow = windowOutput(w, pl, pr, p.poolingWidth, sw, dw);
  const values = new Float64Array(n * oh * ow * c);
  for (let bi = 0; bi < n; bi++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        for (let ch = 0; ch < c; ch++) {
          let total = 0;
          let count = 0;
          let max = -Infinity;
          for (let ky = 0; ky < p.poolingHeight; ky++) {
            const iy = oy * sh + ky * dh - pt;
            if (iy < 0 || iy >= h) continue;
            for (let kx = 0; kx < p.poolingWidth; kx++) {
              const ix = ox * sw + kx * dw - pl;
              if (ix < 0 || ix >= w) continue;
              const value = input[((bi * h + iy) * w + ix) * c + ch]!;
              total += value;
              count++;
              max = Math.max(max, value);
            }
          }
          values[((bi * oh + oy) * ow + ox) * c + ch] = average ? total / count : max;
        }
      }
    }
  }
  return { dims: [n, oh, ow, c], values };
}

const POOLING_CASES: PoolingCase[] = [
  { name: '2x2 stride 2', input: [1, 6, 8, 3], params: { poolingHeight: 2, poolingWidth: 2, strideHeight: 2, strideWidth: 2 } },
  { name: '3x3 stride 1 padding 1', input: [2, 5, 7, 4], params: { poolingHeight: 3, poolingWidth: 3, paddingTop: 1, paddingRight: 1, paddingBottom: 1, paddingLeft: 1 } },
  { name: '3x3 stride 2 padding 1', input: [1, 13, 13, 5], params: { poolingHeight: 3, poolingWidth: 3, strideHeight: 2, strideWidth: 2, paddingTop: 1, paddingRight: 1, paddingBottom: 1, paddingLeft: 1 } },
  { name: 'asymmetric padding', input: [1, 7, 5, 2], params: { poolingHeight: 2, poolingWidth: 3, paddingTop: 1, paddingLeft: 2, strideHeight: 1, strideWidth: 2 } },
  { name: 'dilation 2', input: [1, 9, 9, 3], params: { poolingHeight: 2, poolingWidth: 2, dilationHeight: 2, dilationWidth: 2 } },
  { name: 'window of whole input', input: [1, 4, 5, 7], params: { poolingHeight: 4, poolingWidth: 5 } },
  { name: 'odd channels', input: [1, 7, 7, 31], params: { poolingHeight: 3, poolingWidth: 2, strideHeight: 2, strideWidth: 3 } },
];

for (const [member, average] of [['XNNAvgPooling2d', true], ['XNNMaxPooling2d', false]] as const) {
  describe(member.slice(3), () => {
    POOLING_CASES.forEach((spec, index) => {
      it(spec.name, async () => {
        const input = randomFloats(makeRng(2300 + index), product(spec.input), -3, 3);
        const reference = poolingReference(input, spec.input, spec.params, average);
        const graph = new XnnGraphBuilder();
        const x = graph.input(spec.input);
        const y = graph.output(reference.dims);
        graph.pooling(member, spec.params, x, y);
        const [output] = await runGraph(graph, [input]);
        expectShape(output, reference.dims);
        // Max is exact. The sum of n values in [-3, 3] is within n·u·3n of the exact sum, so
        // their average is within 3(n + 1)·u after the division, and the bound allows 4 times that.
        const window = spec.params.poolingHeight * spec.params.poolingWidth;
        expectAllClose(output!.data as Float32Array, reference.values, average ? { atol: 4 * 3 * (window + 1) * FLOAT32_U } : {}, `${member} output`);
      });
    });

    it('clamps with output_min_max', async () => {
      const spec = POOLING_CASES[1]!;
      const input = randomFloats(makeRng(2350), product(spec.input), -3, 3);
      const reference = poolingReference(input, spec.input, spec.params, average);
      const graph = new XnnGraphBuilder();
      const x = graph.input(spec.input);
      const y = graph.output(reference.dims);
      graph.pooling(member, spec.params, x, y, { outputMinMax: { min: -0.5, max: 1 } });
      const [output] = await runGraph(graph, [input]);
      const expected = reference.values.map((value) => Math.min(Math.max(value, -0.5), 1));
      expectAllClose(output!.data as Float32Array, expected, { atol: 1e-6 }, `${member} output`);
    });
  });
}

describe('GlobalAvgPooling2d', () => {
  for (const dims of [[1, 4, 5, 3], [2, 7, 13, 31], [1, 1, 1, 2], [3, 16, 16, 1]] as [number, number, number, number][]) {
    it(`averages ${JSON.stringify(dims)}`, async () => {
      const [n, h, w, c] = dims;
      const input = randomFloats(makeRng(2400 + h), product(dims), -2, 2);
      const graph = new XnnGraphBuilder();
      const x = graph.input(dims);
      const y = graph.output([n, 1, 1, c]);
      graph.unary('XNNGlobalAvgPooling2d', x, y);
      const [output] = await runGraph(graph, [input]);
      const sums = new Accumulator(n * c);
      for (let bi = 0; bi < n; bi++) {
        for (let p = 0; p < h * w; p++) for (let ch = 0; ch < c; ch++) sums.add(bi * c + ch, input[(bi * h * w + p) * c + ch]! / (h * w));
      }
      expectShape(output, [n, 1, 1, c]);
      expectWithin(output!.data as Float32Array, sums.values, sums.bound(h * w + 1), 'GlobalAvgPooling2d output');
    });
  }
});

describe('GlobalAvgPooling2d output rank', () => {
  // Without XNN_FLAG_KEEP_DIMS (0x40) a serialized output of rank 2 drops the pooled H and W.
  for (const [name, flags, outDims] of [['keep dims flag', 0x40, [2, 1, 1, 3]], ['rank-2 output', 0, [2, 3]]] as const) {
    it(name, async () => {
      const dims = [2, 5, 4, 3];
      const input = randomFloats(makeRng(2450 + flags), product(dims), -2, 2);
      const graph = new XnnGraphBuilder();
      const x = graph.input(dims);
      const y = graph.output([...outDims]);
      graph.unary('XNNGlobalAvgPooling2d', x, y, flags);
      const [output] = await runGraph(graph, [input]);
      const sums = new Accumulator(6);
      for (let bi = 0; bi < 2; bi++) for (let p = 0; p < 20; p++) for (let ch = 0; ch < 3; ch++) sums.add(bi * 3 + ch, input[(bi * 20 + p) * 3 + ch]! / 20);
      expectShape(output, [...outDims]);
      expectWithin(output!.data as Float32Array, sums.values, sums.bound(21), 'GlobalAvgPooling2d output');
    });
  }
});

describe('ArgMaxPooling2d', () => {
  /**
   * Runs ArgMaxPooling2d with both outputs external. The index output is declared fp32 (the
   * only datatype the backend accepts) but contains uint32 indices, so its bytes are read back as
   * uint32. Indices count window cells in XNNPACK's column-major order: kx·pooling_height + ky
   * (XNNPACK's test/argmax-pooling-operator-tester.h at d6500d26fa0d).
   */
  async function checkArgMax(dims: [number, number, number, number], kh: number, kw: number, seed: number): Promise<void> {
    const [n, h, w, c] = dims;
    const oh = Math.floor(h / kh);
    const ow = Math.floor(w / kw);
    const input = randomFloats(makeRng(seed), product(dims), -3, 3);
    const graph = new XnnGraphBuilder();
    const x = graph.input(dims);
    const values = graph.output([n, oh, ow, c]);
    const indices = graph.output([n, oh, ow, c]);
    graph.argMaxPooling({ poolingHeight: kh, poolingWidth: kw }, x, values, indices);
    const [valueOutput, indexOutput] = await runGraph(graph, [input]);

    const expectedValues: number[] = [];
    const expectedIndices: number[] = [];
    for (let bi = 0; bi < n; bi++) {
      for (let oy = 0; oy < oh; oy++) {
        for (let ox = 0; ox < ow; ox++) {
          for (let ch = 0; ch < c; ch++) {
            let best = -Infinity;
            let bestIndex = 0;
            for (let kx = 0; kx < kw; kx++) {
              for (let ky = 0; ky < kh; ky++) {
                const value = input[((bi * h + oy * kh + ky) * w + ox * kw + kx) * c + ch]!;
                if (value > best) {
                  best = value;
                  bestIndex = kx * kh + ky;
                }
              }
            }
            expectedValues.push(best);
            expectedIndices.push(bestIndex);
          }
        }
      }
    }
    const indexData = indexOutput!.data as Float32Array;
    expectAllClose(valueOutput!.data as Float32Array, expectedValues, {}, 'ArgMaxPooling2d values');
    expectAllClose(new Uint32Array(indexData.buffer, indexData.byteOffset, indexData.length), expectedIndices, {}, 'ArgMaxPooling2d indices');
  }

  it('1xW window (max over width)', async () => {
    await checkArgMax([1, 3, 7, 4], 1, 7, 2500);
  });

  it('Hx1 window (max over height)', async () => {
    await checkArgMax([2, 5, 3, 3], 5, 1, 2501);
  });

  it('2x3 window', async () => {
    await checkArgMax([1, 4, 9, 5], 2, 3, 2502);
  });
});

describe('StaticResizeBilinear2D', () => {
  const ALIGN_CORNERS = 0x8;
  const TENSORFLOW_LEGACY_MODE = 0x4;

  /**
   * Computes the source coordinate and weight as XNNPACK's
   * xnn_indirection_init_resize_bilinear2d_hwc_f32 (d6500d26fa0d) does. Align corners scales
   * by (in - 1) / (out - 1), or by in / out when out is 1. Legacy mode samples at target·in/out.
   * The default uses half-pixel centers, clamped to [0, in - 1].
   */
  function sourcePosition(target: number, inSize: number, outSize: number, flags: number): { low: number; high: number; weight: number } {
    const alignCorners = (flags & ALIGN_CORNERS) !== 0;
    const adjustment = alignCorners && outSize !== 1 ? 1 : 0;
    const scale = (inSize - adjustment) / (outSize - adjustment);
    let position: number;
    if (alignCorners || (flags & TENSORFLOW_LEGACY_MODE) !== 0) {
      position = target * scale;
    } else {
      position = Math.min(Math.max((target + 0.5) * scale - 0.5, 0), inSize - 1);
    }
    const low = Math.floor(position);
    return { low, high: Math.min(low + 1, inSize - 1), weight: position - low };
  }

  const shapes: [string, [number, number, number, number], number, number][] = [
    ['upscale 3x4 to 7x9', [1, 3, 4, 2], 7, 9],
    ['downscale 8x8 to 3x5', [2, 8, 8, 3], 3, 5],
    ['to a single pixel', [1, 4, 5, 2], 1, 1],
    ['from a single pixel', [1, 1, 1, 3], 4, 2],
    ['same size', [1, 5, 6, 1], 5, 6],
  ];
  for (const [mode, flags] of [['half-pixel', 0], ['align corners', ALIGN_CORNERS], ['TensorFlow legacy', TENSORFLOW_LEGACY_MODE]] as const) {
    shapes.forEach(([name, dims, newH, newW], index) => {
      it(`${mode} ${name}`, async () => {
        const [n, h, w, c] = dims;
        const input = randomFloats(makeRng(2600 + index), product(dims), -2, 2);
        const graph = new XnnGraphBuilder();
        const x = graph.input(dims);
        const y = graph.output([n, newH, newW, c]);
        graph.resizeBilinear(newH, newW, x, y, flags);
        const [output] = await runGraph(graph, [input]);
        const expected: number[] = [];
        for (let bi = 0; bi < n; bi++) {
          for (let oy = 0; oy < newH; oy++) {
            const sy = sourcePosition(oy, h, newH, flags);
            for (let ox = 0; ox < newW; ox++) {
              const sx = sourcePosition(ox, w, newW, flags);
              for (let ch = 0; ch < c; ch++) {
                const at = (yy: number, xx: number) => input[((bi * h + yy) * w + xx) * c + ch]!;
                const top = at(sy.low, sx.low) + (at(sy.low, sx.high) - at(sy.low, sx.low)) * sx.weight;
                const bottom = at(sy.high, sx.low) + (at(sy.high, sx.high) - at(sy.high, sx.low)) * sx.weight;
                expected.push(top + (bottom - top) * sy.weight);
              }
            }
          }
        }
        expectShape(output, [n, newH, newW, c]);
        // The weights are float32 (relative error ~u) and multiply differences of at most 4,
        // over three interpolations: 1e-6 absolute.
        expectAllClose(output!.data as Float32Array, expected, { atol: 1e-6 }, 'resize output');
      });
    });
  }

  it('rejects no output pixels', async () => {
    const graph = new XnnGraphBuilder();
    const x = graph.input([1, 2, 2, 1]);
    const y = graph.output([1, 0, 2, 1]);
    graph.resizeBilinear(0, 2, x, y);
    await expect(runGraph(graph, [new Float32Array(4)])).rejects.toMatchObject({ code: 'ERR_DELEGATE' });
  });
});
