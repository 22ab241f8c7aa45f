// Portable normalization, softmax, matmul, convolution and reduction kernels against
// float64 references computed here.
import { describe, it } from 'vitest';

import { expectErrorCode, expectTensor, makeTensor } from '../helpers.js';
import { runProgram, sampleValues, toFloat32 } from './harness.js';

describe('native_layer_norm.out', () => {
  it('returns out, mean and rstd', async () => {
    const rows = 3;
    const width = 8;
    const input = toFloat32(sampleValues(rows * width, 11, 3));
    const weight = toFloat32(sampleValues(width, 12));
    const bias = toFloat32(sampleValues(width, 13));
    const eps = 1e-5;
    const outputs = await runProgram(
      (m) => {
        const x = m.tensor({ dtype: 'float32', sizes: [rows, width] });
        const w = m.tensor({ dtype: 'float32', sizes: [width], constant: weight });
        const b = m.tensor({ dtype: 'float32', sizes: [width], constant: bias });
        const out = m.tensor({ dtype: 'float32', sizes: [rows, width] });
        const mean = m.tensor({ dtype: 'float32', sizes: [rows, 1] });
        const rstd = m.tensor({ dtype: 'float32', sizes: [rows, 1] });
        m.kernel('aten::native_layer_norm.out', [x, m.ints([width]), w, b, m.double(eps), out, mean, rstd, out, mean, rstd]);
        m.setInputs([x]).setOutputs([out, mean, rstd]);
      },
      [makeTensor('float32', [rows, width], input)],
    );
    const expectedOut: number[] = [];
    const expectedMean: number[] = [];
    const expectedRstd: number[] = [];
    for (let r = 0; r < rows; r++) {
      const row = input.slice(r * width, (r + 1) * width);
      const mu = row.reduce((s, v) => s + v, 0) / width;
      const variance = row.reduce((s, v) => s + (v - mu) ** 2, 0) / width;
      const rs = 1 / Math.sqrt(variance + eps);
      row.forEach((v, i) => expectedOut.push((v - mu) * rs * weight[i]! + bias[i]!));
      expectedMean.push(mu);
      expectedRstd.push(rs);
    }
    const tolerance = { rtol: 1e-5, atol: 1e-5 };
    expectTensor(outputs[0], 'float32', [rows, width], expectedOut, tolerance, 'out');
    expectTensor(outputs[1], 'float32', [rows, 1], expectedMean, tolerance, 'mean');
    expectTensor(outputs[2], 'float32', [rows, 1], expectedRstd, tolerance, 'rstd');
  });
});

describe('native_layer_norm.out without weight or bias', () => {
  // Each combination has its own loop in the kernel; 13 values leave a partial vector.
  for (const [withWeight, withBias] of [[true, false], [false, true], [false, false]] as const) {
    it(`${withWeight ? 'weight' : 'no weight'}, ${withBias ? 'bias' : 'no bias'}`, async () => {
      const rows = 4;
      const width = 13;
      const input = toFloat32(sampleValues(rows * width, 31, 2));
      const weight = toFloat32(sampleValues(width, 32));
      const bias = toFloat32(sampleValues(width, 33));
      const eps = 1e-5;
      const outputs = await runProgram(
        (m) => {
          const x = m.tensor({ dtype: 'float32', sizes: [rows, width] });
          const w = withWeight ? m.tensor({ dtype: 'float32', sizes: [width], constant: weight }) : m.none();
          const b = withBias ? m.tensor({ dtype: 'float32', sizes: [width], constant: bias }) : m.none();
          const out = m.tensor({ dtype: 'float32', sizes: [rows, width] });
          const mean = m.tensor({ dtype: 'float32', sizes: [rows, 1] });
          const rstd = m.tensor({ dtype: 'float32', sizes: [rows, 1] });
          m.kernel('aten::native_layer_norm.out', [x, m.ints([width]), w, b, m.double(eps), out, mean, rstd, out, mean, rstd]);
          m.setInputs([x]).setOutputs([out]);
        },
        [makeTensor('float32', [rows, width], input)],
      );
      const expected: number[] = [];
      for (let r = 0; r < rows; r++) {
        const row = input.slice(r * width, (r + 1) * width);
        const mu = row.reduce((s, v) => s + v, 0) / width;
        const rs = 1 / Math.sqrt(row.reduce((s, v) => s + (v - mu) ** 2, 0) / width + eps);
        row.forEach((v, i) => expected.push((v - mu) * rs * (withWeight ? weight[i]! : 1) + (withBias ? bias[i]! : 0)));
      }
      expectTensor(outputs[0], 'float32', [rows, width], expected, { rtol: 1e-5, atol: 1e-5 }, 'out');
    });
  }
});

describe('_softmax.out', () => {
  it('normalizes along the last dim', async () => {
    const input = toFloat32(sampleValues(12, 21, 40));
    const outputs = await runProgram(
      (m) => {
        const x = m.tensor({ dtype: 'float32', sizes: [3, 4] });
        const out = m.tensor({ dtype: 'float32', sizes: [3, 4] });
        m.kernel('aten::_softmax.out', [x, m.int(-1), m.bool(false), out, out]);
        m.setInputs([x]).setOutputs([out]);
      },
      [makeTensor('float32', [3, 4], input)],
    );
    const expected: number[] = [];
    for (let r = 0; r < 3; r++) {
      const row = input.slice(r * 4, r * 4 + 4);
      const max = Math.max(...row);
      const sum = row.reduce((s, v) => s + Math.exp(v - max), 0);
      row.forEach((v) => expected.push(Math.exp(v - max) / sum));
    }
    expectTensor(outputs[0], 'float32', [3, 4], expected, { rtol: 1e-5, atol: 1e-7 });
  });
});

describe('mm.out', () => {
  it('multiplies and rejects mismatched shapes', async () => {
    const a = toFloat32(sampleValues(6, 31));
    const b = toFloat32(sampleValues(12, 32));
    const outputs = await runProgram(
      (m) => {
        const x = m.tensor({ dtype: 'float32', sizes: [2, 3] });
        const y = m.tensor({ dtype: 'float32', sizes: [3, 4], constant: b });
        const out = m.tensor({ dtype: 'float32', sizes: [2, 4] });
        m.kernel('aten::mm.out', [x, y, out, out]);
        m.setInputs([x]).setOutputs([out]);
      },
      [makeTensor('float32', [2, 3], a)],
    );
    const expected: number[] = [];
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 4; j++) {
        let sum = 0;
        for (let k = 0; k < 3; k++) sum += a[i * 3 + k]! * b[k * 4 + j]!;
        expected.push(sum);
      }
    }
    expectTensor(outputs[0], 'float32', [2, 4], expected, { rtol: 1e-5, atol: 1e-6 });

    const mismatched = runProgram(
      (m) => {
        const x = m.tensor({ dtype: 'float32', sizes: [2, 3] });
        const y = m.tensor({ dtype: 'float32', sizes: [2, 2], constant: [1, 2, 3, 4] });
        const out = m.tensor({ dtype: 'float32', sizes: [2, 2] });
        m.kernel('aten::mm.out', [x, y, out, out]);
        m.setInputs([x]).setOutputs([out]);
      },
      [makeTensor('float32', [2, 3], a)],
    );
    await expectErrorCode(mismatched, 'ERR_KERNEL');
  });
});

describe('convolution.out', () => {
  it('2-d with padding, stride, groups', async () => {
    const [n, c, h, w] = [1, 4, 5, 6];
    const [outChannels, groups, kh, kw] = [4, 2, 3, 2];
    const stride: [number, number] = [2, 1];
    const pad: [number, number] = [1, 0];
    const input = toFloat32(sampleValues(n * c * h * w, 41));
    const weight = toFloat32(sampleValues(outChannels * (c / groups) * kh * kw, 42));
    const bias = toFloat32(sampleValues(outChannels, 43));
    const oh = Math.floor((h + 2 * pad[0] - kh) / stride[0]) + 1;
    const ow = Math.floor((w + 2 * pad[1] - kw) / stride[1]) + 1;
    const outputs = await runProgram(
      (m) => {
        const x = m.tensor({ dtype: 'float32', sizes: [n, c, h, w] });
        const wt = m.tensor({ dtype: 'float32', sizes: [outChannels, c / groups, kh, kw], constant: weight });
        const b = m.tensor({ dtype: 'float32', sizes: [outChannels], constant: bias });
        const out = m.tensor({ dtype: 'float32', sizes: [n, outChannels, oh, ow] });
        m.kernel('aten::convolution.out', [
          x, wt, b, m.ints(stride), m.ints(pad), m.ints([1, 1]), m.bool(false), m.ints([0, 0]), m.int(groups), out, out,
        ]);
        m.setInputs([x]).setOutputs([out]);
      },
      [makeTensor('float32', [n, c, h, w], input)],
    );
    const perGroup = c / groups;
    const outPerGroup = outChannels / groups;
    const expected: number[] = [];
    for (let o = 0; o < outChannels; o++) {
      const g = Math.floor(o / outPerGroup);
      for (let y = 0; y < oh; y++) {
        for (let x = 0; x < ow; x++) {
          let sum = bias[o]!;
          for (let ic = 0; ic < perGroup; ic++) {
            for (let i = 0; i < kh; i++) {
              for (let j = 0; j < kw; j++) {
                const iy = y * stride[0] - pad[0] + i;
                const ix = x * stride[1] - pad[1] + j;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                sum += weight[((o * perGroup + ic) * kh + i) * kw + j]! * input[((g * perGroup + ic) * h + iy) * w + ix]!;
              }
            }
          }
          expected.push(sum);
        }
      }
    }
    expectTensor(outputs[0], 'float32', [n, outChannels, oh, ow], expected, { rtol: 1e-5, atol: 1e-5 });
  });
});

describe('reductions', () => {
  it('mean.out over dims with keepdim', async () => {
    const input = toFloat32(sampleValues(24, 51, 10));
    const outputs = await runProgram(
      (m) => {
        const x = m.tensor({ dtype: 'float32', sizes: [2, 3, 4] });
        const out = m.tensor({ dtype: 'float32', sizes: [2, 1, 1] });
        m.kernel('aten::mean.out', [x, m.ints([-1, 1]), m.bool(true), m.none(), out, out]);
        m.setInputs([x]).setOutputs([out]);
      },
      [makeTensor('float32', [2, 3, 4], input)],
    );
    const expected = [0, 1].map((b) => input.slice(b * 12, b * 12 + 12).reduce((s, v) => s + v, 0) / 12);
    expectTensor(outputs[0], 'float32', [2, 1, 1], expected, { rtol: 1e-5, atol: 1e-6 });
  });

  it('argmax.out picks the first maximum', async () => {
    const outputs = await runProgram(
      (m) => {
        const x = m.tensor({ dtype: 'float32', sizes: [2, 3] });
        const out = m.tensor({ dtype: 'int64', sizes: [2] });
        m.kernel('aten::argmax.out', [x, m.int(1), m.bool(false), out, out]);
        m.setInputs([x]).setOutputs([out]);
      },
      [makeTensor('float32', [2, 3], [1, 5, 5, 9, 2, 3])],
    );
    expectTensor(outputs[0], 'int64', [2], [1n, 0n]);
  });
});

describe('embedding.out', () => {
  it('gathers rows and rejects an index out of range', async () => {
    const table = [0, 1, 10, 11, 20, 21];
    const build = (m: Parameters<Parameters<typeof runProgram>[0]>[0]) => {
      const weight = m.tensor({ dtype: 'float32', sizes: [3, 2], constant: table });
      const indices = m.tensor({ dtype: 'int64', sizes: [3] });
      const out = m.tensor({ dtype: 'float32', sizes: [3, 2] });
      m.kernel('aten::embedding.out', [weight, indices, m.int(-1), m.bool(false), m.bool(false), out, out]);
      m.setInputs([indices]).setOutputs([out]);
    };
    const outputs = await runProgram(build, [makeTensor('int64', [3], [2, 0, 1])]);
    expectTensor(outputs[0], 'float32', [3, 2], [20, 21, 0, 1, 10, 11]);
    await expectErrorCode(runProgram(build, [makeTensor('int64', [3], [0, 3, 1])]), 'ERR_KERNEL');
  });
});
