// The generated CLIP vision encoder programs: their structure (decoded with flatc, read
// through Program.methodMeta) and, once the runtime implements every operator and the
// XnnpackBackend they use, their float32 outputs against the independent float64 reference
// in test/tooling/clip-reference.ts.
//
// The full ViT-B/32 (224x224, 12 layers, width 768) from seeded weights runs only with
// EMBED_IMAGE_FULL_CLIP=1, because the program holds 350 MB of weights and the float64
// reference takes about 20 s per image (measured on a shared 2-core Linux machine).
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { ByteBuffer } from 'flatbuffers';
import { describe, expect, it } from 'vitest';

import { Program, supportedBackends, type Tensor } from '../src/program.js';
import { repoRoot, cosine } from './helpers.js';
import { decodeProgram, hasFlatc, type JsonObject } from './tooling/flatc-json.js';
import { planMemoryGreedy } from './tooling/clip-memory-plan.js';
import { attentionGraph, buildClipProgram, embeddingsGraph, mlpGraph } from './tooling/clip-program.js';
import { clipReferenceEmbedding, erf, referenceAttention, referenceEmbeddings, referenceMlp } from './tooling/clip-reference.js';
import { SeededRandom, clipGeometry, clipParameterShapes, loadClipWeights, parseClipConfig, seededClipWeights, type ClipVisionConfig } from './tooling/clip-weights.js';
import { float16ToNumber, serializeSafetensors } from './tooling/safetensors.js';
import { ProgramBuilder } from './tooling/pte-writer.js';
import { addXnnpackDelegate, decodeXnnGraph, sha256Hex, type XnnGraphBuilder } from './tooling/xnnpack-writer.js';

const fixtureDir = path.join(repoRoot, 'fixtures', 'models');
const tinyConfig = parseClipConfig(JSON.parse(readFileSync(path.join(fixtureDir, 'clip-tiny.config.json'), 'utf8')));
const tinyPath = path.join(fixtureDir, 'clip-tiny.pte');
const tinySeed = 1;

/** ViT-B/32: 224x224 input, patch 32, 12 layers of width 768 with 12 heads, MLP 3072, projection 512. */
const vitB32: ClipVisionConfig = {
  hidden_size: 768,
  intermediate_size: 3072,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  image_size: 224,
  patch_size: 32,
  num_channels: 3,
  layer_norm_eps: 1e-5,
  hidden_act: 'quick_gelu',
  projection_dim: 512,
};

/** The portable operators the lowering leaves outside the delegates, in first-use order. */
const portableOperators = ['aten::expand_copy.out', 'aten::embedding.out', 'aten::native_layer_norm.out', 'aten::select_copy.int_out', 'aten::linalg_vector_norm.out'];

/**
 * Test images as [C, H, W] values k/255, like RGB pixels divided by 255: colour ramps,
 * an 8-pixel checkerboard with a tint, and seeded noise.
 */
function testImages(size: number): { name: string; pixels: Float32Array }[] {
  const plane = size * size;
  const image = (fill: (channel: number, y: number, x: number) => number): Float32Array => {
    const pixels = new Float32Array(3 * plane);
    for (let c = 0; c < 3; c++) for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) pixels[c * plane + y * size + x] = Math.round(fill(c, y, x)) / 255;
    return pixels;
  };
  const ramp = (channel: number, y: number, x: number): number => {
    if (channel === 0) return (255 * x) / (size - 1);
    if (channel === 1) return (255 * y) / (size - 1);
    return (255 * (x + y)) / (2 * size - 2);
  };
  const random = new SeededRandom(7);
  return [
    { name: 'ramps', pixels: image(ramp) },
    { name: 'checkerboard', pixels: image((c, y, x) => ((Math.floor(x / 8) + Math.floor(y / 8)) % 2 === 0 ? 230 - 40 * c : 20 + 30 * c)) },
    { name: 'noise', pixels: image(() => Math.floor(random.uniform() * 256) % 256) },
  ];
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

function norm(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]! ** 2;
  return Math.sqrt(sum);
}

const tinyBytes = new Uint8Array(readFileSync(tinyPath));
const tinyProgram = await Program.load(tinyBytes, { allowUnsupported: true });
const tinyMeta = tinyProgram.methodMeta('forward');
tinyProgram.dispose();
/** True once the runtime has XnnpackBackend and every portable operator the program uses. */
const runnable = supportedBackends().includes('XnnpackBackend') && tinyMeta.problems.length === 0;

describe('clip-tiny fixture', () => {
  it('matches the generator', () => {
    const { bytes } = buildClipProgram(tinyConfig, seededClipWeights(tinyConfig, tinySeed));
    if (process.env.EMBED_IMAGE_UPDATE_FIXTURES === '1') writeFileSync(tinyPath, bytes);
    expect(Buffer.compare(Buffer.from(bytes), Buffer.from(tinyBytes))).toBe(0);
  });

  it('has one forward method', () => {
    expect(tinyMeta.name).toBe('forward');
  });

  it('takes a float32 image', () => {
    expect(tinyMeta.inputs).toMatchObject([{ kind: 'tensor', dtype: 'float32', shape: [1, 3, 64, 64] }]);
  });

  it('returns a float32 embedding', () => {
    expect(tinyMeta.outputs).toMatchObject([{ kind: 'tensor', dtype: 'float32', shape: [1, 32] }]);
  });

  it('delegates to XnnpackBackend only', () => {
    expect(tinyMeta.backends).toEqual(['XnnpackBackend']);
  });

  it('keeps the portable operators outside', () => {
    expect(tinyMeta.operators).toEqual(portableOperators);
  });

  it('has 19 instructions', () => {
    // expand, embedding, embeddings delegate, pre LN, 2 x (LN, attention, LN, mlp),
    // select, post LN, projection, vector norm, clamp, expand, divide.
    expect(tinyMeta.instructionCount).toBe(19);
  });
});

describe.runIf(hasFlatc)('clip-tiny structure decoded by flatc', () => {
  const program = decodeProgram(tinyBytes);
  const plan = (program.execution_plan as JsonObject[])[0]!;
  const values = plan.values as JsonObject[];
  const instructions = ((plan.chains as JsonObject[])[0]!.instructions as JsonObject[]).map((instruction) => instruction.instr_args as JsonObject);
  const segmentBase = Number(new DataView(tinyBytes.buffer, tinyBytes.byteOffset).getBigUint64(24, true));
  const segments = program.segments as JsonObject[];
  const segmentBytes = (index: number): Uint8Array => {
    const segment = segments[index]!;
    const start = segmentBase + Number(segment.offset);
    return tinyBytes.subarray(start, start + Number(segment.size));
  };
  const delegates = plan.delegates as JsonObject[];
  const graphs = delegates.map((delegate) => decodeXnnGraph(segmentBytes(Number((delegate.processed as JsonObject).index)), repoRoot));
  const nodeTypes = (graph: JsonObject): string[] => (graph.xnodes as JsonObject[]).map((node) => String(node.xnode_union_type).replace(/^XNN/, ''));

  it('has eight delegates', () => {
    expect(delegates.map((delegate) => delegate.id)).toEqual(Array(8).fill('XnnpackBackend'));
  });

  it('stores named data under its sha256', () => {
    const mismatched = (program.named_data as JsonObject[]).filter((entry) => sha256Hex(segmentBytes(Number(entry.segment_index))) !== entry.key);
    expect(mismatched).toEqual([]);
  });

  it('names every delegate constant', () => {
    const keys = new Set((program.named_data as JsonObject[]).map((entry) => entry.key));
    const missing = graphs.flatMap((graph) => (graph.constant_data as JsonObject[]).slice(1).filter((entry) => !keys.has(entry.named_key)));
    expect(missing).toEqual([]);
  });

  it('lowers the embeddings', () => {
    expect(nodeTypes(graphs[0]!)).toEqual(['Subtract', 'Div', 'StaticTranspose', 'Conv2d', 'StaticTranspose', 'StaticReshape', 'StaticTranspose', 'Concatenate2', 'Add']);
  });

  it('patchifies with a strided convolution', () => {
    const conv = (graphs[0]!.xnodes as JsonObject[])[3]!.xnode_union as JsonObject;
    expect(conv).toMatchObject({ kernel_height: 16, kernel_width: 16, subsampling_height: 16, subsampling_width: 16, group_input_channels: 3, group_output_channels: 64, groups: 1, bias_id: 4294967295 });
  });

  it('lowers attention', () => {
    expect(nodeTypes(graphs[1]!)).toEqual([
      'FullyConnected',
      'StaticReshape',
      'StaticTranspose',
      'FullyConnected',
      'StaticReshape',
      'StaticTranspose',
      'FullyConnected',
      'StaticReshape',
      'StaticTranspose',
      'StaticTranspose',
      'StaticReshape',
      'StaticReshape',
      'BatchMatrixMultiply',
      'StaticReshape',
      'Multiply',
      'Softmax',
      'StaticReshape',
      'StaticReshape',
      'BatchMatrixMultiply',
      'StaticReshape',
      'StaticTranspose',
      'StaticReshape',
      'FullyConnected',
      'Add',
    ]);
  });

  it('infers the head count in reshapes', () => {
    const reshape = (graphs[1]!.xnodes as JsonObject[])[1]!.xnode_union as JsonObject;
    expect(reshape.new_shape).toEqual([1, 17, 0, 16]);
  });

  it('lowers quick_gelu', () => {
    expect(nodeTypes(graphs[2]!)).toEqual(['FullyConnected', 'Multiply', 'Sigmoid', 'Multiply', 'FullyConnected', 'Add']);
  });

  it('projects without bias', () => {
    const node = (graphs[5]!.xnodes as JsonObject[])[0]!;
    expect(node.xnode_union).toMatchObject({ bias_id: 4294967295, flags: 0 });
  });

  it('clamps the norm below at 1e-12', () => {
    // flatc 2.0.8 prints this float as 0.0, so it is read with the flatbuffers ByteBuffer:
    // XNNGraph field 1 (xnodes), node 0, XNode field 3 (output_min_max), field 0 (output_min).
    const payload = segmentBytes(Number((delegates[6]!.processed as JsonObject).index));
    const view = new DataView(payload.buffer, payload.byteOffset);
    const buffer = new ByteBuffer(payload.subarray(view.getUint32(10, true), view.getUint32(10, true) + view.getUint32(14, true)));
    const field = (table: number, slot: number): number => {
      const offset = buffer.__offset(table, 4 + 2 * slot);
      if (offset === 0) throw new Error(`field ${slot} is absent`);
      return table + offset;
    };
    const root = buffer.readInt32(0);
    const firstNode = buffer.__indirect(buffer.__vector(field(root, 1)));
    const bounds = buffer.__indirect(field(firstNode, 3));
    expect(buffer.readFloat32(field(bounds, 0))).toBe(Math.fround(1e-12));
  });

  it('leaves the norm unbounded above', () => {
    const bounds = (graphs[6]!.xnodes as JsonObject[])[0]!.output_min_max as JsonObject;
    expect(bounds.output_max).toBe(Infinity);
  });

  it('passes delegate arguments in external-id order', () => {
    const call = instructions.find((instruction) => 'delegate_index' in instruction)!;
    const sizes = (call.args as number[]).map((index) => ((values[index]!.val as JsonObject).sizes as number[]).join('x'));
    expect(sizes).toEqual(['1x3x64x64', '1x1x64', '1x17x64', '1x17x64']);
  });

  it('never overlaps live planned tensors', () => {
    // Lifetimes from the decoded instructions, independent of the planner's own bookkeeping.
    const spans = new Map<number, { first: number; last: number }>();
    const touch = (index: number, step: number): void => {
      const span = spans.get(index) ?? { first: step, last: step };
      spans.set(index, { first: Math.min(span.first, step), last: Math.max(span.last, step) });
    };
    instructions.forEach((instruction, step) => (instruction.args as number[]).forEach((index) => touch(index, step)));
    (plan.inputs as number[]).forEach((index) => touch(index, 0));
    (plan.outputs as number[]).forEach((index) => touch(index, instructions.length));
    const planned = [...spans.keys()]
      .filter((index) => (values[index]!.val as JsonObject | undefined)?.allocation_info !== undefined)
      .map((index) => {
        const tensor = values[index]!.val as JsonObject;
        const start = Number((tensor.allocation_info as JsonObject).memory_offset_low);
        const bytes = (tensor.sizes as number[]).reduce((product, size) => product * size, 1) * 4;
        return { index, start, end: start + bytes, ...spans.get(index)! };
      });
    const clashes: string[] = [];
    for (const a of planned) {
      for (const b of planned) {
        if (a.index >= b.index) continue;
        const live = !(a.last < b.first || b.last < a.first);
        const shared = a.start < b.end && b.start < a.end;
        if (live && shared) clashes.push(`${a.index}/${b.index}`);
      }
    }
    expect(clashes).toEqual([]);
  });

  it('reuses memory', () => {
    const total = values
      .map((value) => value.val as JsonObject | undefined)
      .filter((tensor) => tensor?.allocation_info !== undefined)
      .reduce((sum, tensor) => sum + Math.ceil(((tensor!.sizes as number[]).reduce((product, size) => product * size, 1) * 4) / 16) * 16, 0);
    expect(Number((plan.non_const_buffer_sizes as (number | string)[])[1])).toBeLessThan(total);
  });
});

describe('greedy memory planner', () => {
  it('separates overlapping lifetimes', () => {
    const plan = planMemoryGreedy([
      { size: 32, first: 0, last: 2 },
      { size: 32, first: 1, last: 3 },
    ]);
    // Equal sizes: the later spec is placed first, as upstream's reversed insort orders them.
    expect(plan.offsets).toEqual([32, 0]);
  });

  it('shares disjoint lifetimes', () => {
    const plan = planMemoryGreedy([
      { size: 64, first: 0, last: 1 },
      { size: 32, first: 2, last: 3 },
    ]);
    expect(plan.total).toBe(64);
  });

  it('aligns sizes to 16', () => {
    expect(planMemoryGreedy([{ size: 20, first: 0, last: 0 }]).total).toBe(32);
  });

  it('never overlaps random live tensors', () => {
    const random = new SeededRandom(3);
    const specs = Array.from({ length: 200 }, () => {
      const first = Math.floor(random.uniform() * 50);
      return { size: 1 + Math.floor(random.uniform() * 500), first, last: first + Math.floor(random.uniform() * 10) };
    });
    const { offsets } = planMemoryGreedy(specs);
    let clashes = 0;
    specs.forEach((a, i) =>
      specs.forEach((b, j) => {
        if (i >= j || a.last < b.first || b.last < a.first) return;
        if (offsets[i]! < offsets[j]! + b.size && offsets[j]! < offsets[i]! + a.size) clashes++;
      }),
    );
    expect(clashes).toBe(0);
  });
});

describe('CLIP weights', () => {
  it('seeds deterministically', () => {
    const a = seededClipWeights(tinyConfig, 5).get('visual_projection.weight')!;
    const b = seededClipWeights(tinyConfig, 5).get('visual_projection.weight')!;
    expect(Buffer.compare(Buffer.from(a.buffer), Buffer.from(b.buffer))).toBe(0);
  });

  it('draws linear weights with std 0.02', () => {
    const data = seededClipWeights(vitB32Small(), 2).get('vision_model.encoder.layers.0.mlp.fc1.weight')!;
    const std = Math.sqrt(data.reduce((sum, value) => sum + value * value, 0) / data.length);
    expect(Math.abs(std - 0.02)).toBeLessThan(0.001);
  });

  it('centres layer norm weights on 1', () => {
    const data = seededClipWeights(tinyConfig, 2).get('vision_model.pre_layrnorm.weight')!;
    expect(Math.abs(data.reduce((sum, value) => sum + value, 0) / data.length - 1)).toBeLessThan(0.01);
  });

  it('loads safetensors like seeded weights', () => {
    const weights = seededClipWeights(tinyConfig, tinySeed);
    const shapes = clipParameterShapes(tinyConfig);
    const file = serializeSafetensors(new Map([...weights].map(([name, data]) => [name, { shape: shapes.get(name)!, data }])));
    const { bytes } = buildClipProgram(tinyConfig, loadClipWeights(file, tinyConfig));
    expect(Buffer.compare(Buffer.from(bytes), Buffer.from(tinyBytes))).toBe(0);
  });

  it('rejects a missing tensor', () => {
    const weights = seededClipWeights(tinyConfig, 1);
    const shapes = clipParameterShapes(tinyConfig);
    weights.delete('visual_projection.weight');
    const file = serializeSafetensors(new Map([...weights].map(([name, data]) => [name, { shape: shapes.get(name)!, data }])));
    expect(() => loadClipWeights(file, tinyConfig)).toThrow(/missing tensors visual_projection.weight/);
  });

  it('rejects a wrong shape', () => {
    const weights = seededClipWeights(tinyConfig, 1);
    const shapes = clipParameterShapes(tinyConfig);
    shapes.set('vision_model.embeddings.class_embedding', [8, 8]);
    const file = serializeSafetensors(new Map([...weights].map(([name, data]) => [name, { shape: shapes.get(name)!, data }])));
    expect(() => loadClipWeights(file, tinyConfig)).toThrow(/class_embedding" has shape \[8, 8\], but the config needs \[64\]/);
  });

  it('rejects an unknown tensor', () => {
    const file = serializeSafetensors(new Map([['vision_model.extra', { shape: [1], data: new Float32Array(1) }]]));
    expect(() => loadClipWeights(file, tinyConfig)).toThrow(/unexpected tensors vision_model.extra/);
  });

  it('converts float16', () => {
    expect([0x3c00, 0xc000, 0x3555, 0x0001].map(float16ToNumber)).toEqual([1, -2, 0.333251953125, 2 ** -24]);
  });

  it('rejects heads that do not divide the width', () => {
    expect(() => parseClipConfig({ ...tinyConfig, num_attention_heads: 5 })).toThrow(/not divisible by num_attention_heads 5/);
  });
});

/** A config with ViT-B/32's width and few layers, for weight statistics without the full size. */
function vitB32Small(): ClipVisionConfig {
  return { ...vitB32, num_hidden_layers: 1 };
}

describe('float64 reference', () => {
  it('computes erf', () => {
    // Expected values from Python 3.11's math.erf.
    expect(Math.abs(erf(0.5) - 0.5204998778130465) + Math.abs(erf(2) - 0.9953222650189527)).toBeLessThan(1e-13);
  });

  it('returns unit vectors', () => {
    const weights = seededClipWeights(tinyConfig, tinySeed);
    const [image] = testImages(tinyConfig.image_size);
    expect(Math.abs(norm(clipReferenceEmbedding(tinyConfig, weights, image!.pixels)) - 1)).toBeLessThan(1e-12);
  });

  it('separates different images', () => {
    const weights = seededClipWeights(tinyConfig, tinySeed);
    const [a, b] = testImages(tinyConfig.image_size).map((image) => clipReferenceEmbedding(tinyConfig, weights, image.pixels));
    // Far below the cosine tolerance (0.999999), so an input-path error cannot hide.
    expect(cosine(a!, b!)).toBeLessThan(0.9999);
  });
});

async function compareWithReference(bytes: Uint8Array, config: ClipVisionConfig, weights: ReturnType<typeof seededClipWeights>): Promise<void> {
  const program = await Program.load(bytes);
  try {
    for (const { name, pixels } of testImages(config.image_size)) {
      const input: Tensor = { dtype: 'float32', shape: [1, 3, config.image_size, config.image_size], data: pixels };
      const [output] = await program.execute('forward', [input]);
      const actual = (output as Tensor).data as Float32Array;
      const expected = clipReferenceEmbedding(config, weights, pixels);
      expect((output as Tensor).shape, `${name} shape`).toEqual([1, config.projection_dim]);
      expect(maxAbsDiff(actual, expected), `${name} max abs diff`).toBeLessThanOrEqual(1e-5);
      expect(cosine(actual, expected), `${name} cosine`).toBeGreaterThanOrEqual(0.999999);
      expect(Math.abs(norm(actual) - 1), `${name} norm`).toBeLessThanOrEqual(1e-6);
    }
  } finally {
    program.dispose();
  }
}

/** Runs one delegate graph as a program whose inputs and outputs are the graph's externals. */
async function runDelegate(graph: XnnGraphBuilder, inputs: Float32Array[]): Promise<Float32Array> {
  const program = new ProgramBuilder();
  const method = program.method('forward');
  const externals = (kind: 'input' | 'output'): number[] =>
    graph.values.filter((value) => value.kind === kind).map((value) => method.tensor({ dtype: 'float32', sizes: value.dims }));
  const inputValues = externals('input');
  const outputValues = externals('output');
  const { delegateIndex } = addXnnpackDelegate(program, method, graph);
  method.delegateCall(delegateIndex, [...inputValues, ...outputValues]);
  method.setInputs(inputValues).setOutputs(outputValues);
  const loaded = await Program.load(program.build());
  try {
    const shapes = graph.values.filter((value) => value.kind === 'input').map((value) => value.dims);
    const [output] = await loaded.execute(
      'forward',
      inputs.map((data, index): Tensor => ({ dtype: 'float32', shape: shapes[index]!, data })),
    );
    return (output as Tensor).data as Float32Array;
  } finally {
    loaded.dispose();
  }
}

/** Seeded values around 0 with unit spread, like layer norm outputs. */
function randomActivations(count: number, seed: number): Float32Array {
  const random = new SeededRandom(seed);
  return Float32Array.from({ length: count }, () => random.normal());
}

// One delegate at a time, so that a mismatch of the whole program can be traced to a block.
describe.runIf(supportedBackends().includes('XnnpackBackend'))('clip-tiny delegates against the float64 reference', () => {
  const weights = seededClipWeights(tinyConfig, tinySeed);
  const { sequence } = clipGeometry(tinyConfig);
  const width = tinyConfig.hidden_size;

  it('matches the embeddings block', async () => {
    const pixels = testImages(tinyConfig.image_size)[0]!.pixels;
    const classToken = weights.get('vision_model.embeddings.class_embedding')!;
    const positions = weights.get('vision_model.embeddings.position_embedding.weight')!;
    const actual = await runDelegate(embeddingsGraph(tinyConfig, weights), [pixels, classToken, positions]);
    expect(maxAbsDiff(actual, referenceEmbeddings(tinyConfig, weights, pixels))).toBeLessThanOrEqual(1e-5);
  });

  it('matches the attention block', async () => {
    const normed = randomActivations(sequence * width, 11);
    const residual = randomActivations(sequence * width, 12);
    const actual = await runDelegate(attentionGraph(tinyConfig, weights, 1), [normed, residual]);
    const expected = referenceAttention(tinyConfig, weights, 1, normed).map((value, index) => value + residual[index]!);
    expect(maxAbsDiff(actual, expected)).toBeLessThanOrEqual(1e-5);
  });

  it('matches the MLP block', async () => {
    const normed = randomActivations(sequence * width, 13);
    const residual = randomActivations(sequence * width, 14);
    const actual = await runDelegate(mlpGraph(tinyConfig, weights, 1), [normed, residual]);
    const expected = referenceMlp(tinyConfig, weights, 1, normed).map((value, index) => value + residual[index]!);
    expect(maxAbsDiff(actual, expected)).toBeLessThanOrEqual(1e-5);
  });

  it('matches the gelu MLP block', async () => {
    const geluConfig: ClipVisionConfig = { ...tinyConfig, hidden_act: 'gelu' };
    const normed = randomActivations(sequence * width, 15);
    const residual = new Float32Array(sequence * width);
    const actual = await runDelegate(mlpGraph(geluConfig, weights, 0), [normed, residual]);
    expect(maxAbsDiff(actual, referenceMlp(geluConfig, weights, 0, normed))).toBeLessThanOrEqual(1e-5);
  });
});

describe('CLIP outputs against the float64 reference', () => {
  it.runIf(runnable)('matches for clip-tiny', async () => {
    await compareWithReference(tinyBytes, tinyConfig, seededClipWeights(tinyConfig, tinySeed));
  });

  it.runIf(runnable && process.env.EMBED_IMAGE_FULL_CLIP === '1')(
    'matches for ViT-B/32',
    async () => {
      const weights = seededClipWeights(vitB32, 1);
      const { bytes } = buildClipProgram(vitB32, weights);
      await compareWithReference(bytes, vitB32, weights);
    },
    20 * 60_000,
  );
});
