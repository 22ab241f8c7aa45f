/**
 * Writes the CLIP vision encoder as an ExecuTorch program (.pte) shaped like the one
 * react-native-executorch ships as `CLIP_VIT_BASE_PATCH32_IMAGE`
 * (`clip_vit_base_patch32_image_xnnpack_fp32.pte`). It has one method, `forward`, with one
 * float32 input [1, C, H, W] of RGB pixels divided by 255 and one float32 output
 * [1, projection_dim] of unit length. The CLIP mean/std normalization and the final L2 normalization are inside the
 * program.
 *
 * Lowering. The graph is the one `torch.export` gives for transformers'
 * `CLIPVisionModelWithProjection` (eager attention) wrapped with the normalizations, then
 * partitioned as upstream ExecuTorch's XnnpackPartitioner does at main commit cff6f4dd32e6:
 * an op is delegated when `backends/xnnpack/partition/config/__init__.py` lists a config for
 * it (`ALL_PARTITIONER_CONFIGS`), and each connected run of delegated ops becomes one
 * DelegateCall unless merging would create a cycle through a portable op. Per program:
 *
 * 1. portable `aten::expand_copy.out` of `class_embedding` to [1, 1, D] and
 *    `aten::embedding.out` of the position embedding with the constant int64
 *    `position_ids`: no config covers `expand_copy` or `embedding`;
 * 2. delegate "embeddings": Subtract mean, Div std (sub.Tensor, div.Tensor; constants
 *    [1, C, 1, 1]), StaticTranspose to NHWC, Conv2d (no bias; filter permuted to
 *    [D, p, p, C] as op_conv2d.py defines it), StaticTranspose back to NCHW (the two
 *    transposes are what `_passes/channels_last_tagged_reshape_pass.py` inserts around a
 *    convolution), StaticReshape [1, D, g²] (flatten), StaticTranspose [0, 2, 1],
 *    Concatenate2 on axis 1 with the class token, Add of the position embeddings;
 * 3. portable `aten::native_layer_norm.out` (`pre_layrnorm`): no layer norm config;
 * 4. per encoder layer, two delegates split by the portable layer norms:
 *    - portable `native_layer_norm` (layer_norm1);
 *    - delegate "attention": FullyConnected q, k, v (`linear`, filter [out, in], flags 0,
 *      as op_linear.py writes it); StaticReshape [1, S, 0, Dh] (`view(*shape, -1, head_dim)`,
 *      -1 written as 0 by op_view_copy.py) and StaticTranspose [0, 2, 1, 3] per projection,
 *      StaticTranspose [0, 1, 3, 2] of k; `matmul` decomposed to StaticReshape to 3-D,
 *      BatchMatrixMultiply (flags 0, op_bmm.py) and StaticReshape back; Multiply by the
 *      0-dim constant head_dim^-0.5; Softmax (last dim); the second matmul likewise;
 *      StaticTranspose [0, 2, 1, 3], StaticReshape [1, S, 0]; FullyConnected out_proj;
 *      Add of the residual;
 *    - portable `native_layer_norm` (layer_norm2);
 *    - delegate "mlp": FullyConnected fc1; quick_gelu as Multiply by 1.702 (0-dim constant),
 *      Sigmoid, Multiply (or Gelu for hidden_act "gelu"); FullyConnected fc2; Add of the
 *      residual;
 * 5. portable `aten::select_copy.int_out` of token 0 (`[:, 0, :]`): no select config;
 *    portable `native_layer_norm` (post_layernorm);
 * 6. delegate "projection": FullyConnected `visual_projection` (no bias);
 * 7. `torch.nn.functional.normalize(x, dim=-1)` as it decomposes: portable
 *    `aten::linalg_vector_norm.out` (no config), delegate "clamp" (Clamp with
 *    output_min_max [1e-12, inf], from `clamp_min`), portable `aten::expand_copy.out` to
 *    [1, P] (`expand_as`), delegate "divide" (Div). The three delegates stay separate:
 *    merging any two of them would create a cycle through the portable ops between them.
 *
 * NOTE: react-native-executorch's export script for this model was not found in public
 * sources, so three choices here are assumptions: the wrapper normalizes pixels with
 * `(x - mean) / std` on [1, 3, 1, 1] constants, it ends with `F.normalize(dim=-1)`, and the
 * attention is transformers' eager form rather than a decomposed
 * `scaled_dot_product_attention` (which would scale q and k by sqrt(scale) each).
 *
 * Memory is planned with upstream's greedy algorithm (see `clip-memory-plan.ts`) over the
 * method input, every intermediate and the output in arena 1; weights used by delegates are
 * named data keyed by sha256 (16-byte aligned), weights used by portable kernels are in the
 * constant segment.
 */
import { ProgramBuilder, type DTypeName, type MethodBuilder } from './pte-writer.js';
import { CLIP_MEAN, CLIP_STD, LAYER_PREFIX, NORMALIZE_EPS, clipGeometry, type ClipVisionConfig, type ClipWeights } from './clip-weights.js';
import { planMemoryGreedy } from './clip-memory-plan.js';
import { XNN_INVALID_VALUE_ID, XnnGraphBuilder, addXnnpackDelegate } from './xnnpack-writer.js';

/** An argument of a KernelCall before values are created. */
type Argument =
  | { kind: 'tensor'; id: number }
  | { kind: 'constant'; id: number }
  | { kind: 'int'; value: number }
  | { kind: 'double'; value: number }
  | { kind: 'bool'; value: boolean }
  | { kind: 'ints'; value: number[] }
  | { kind: 'none' };

type Step =
  | { kind: 'kernel'; operator: string; args: Argument[] }
  | { kind: 'delegate'; name: string; graph: XnnGraphBuilder; inputs: number[]; outputs: number[] };

interface PlannedTensor {
  sizes: number[];
  dtype: DTypeName;
}

interface ConstantTensor {
  sizes: number[];
  dtype: DTypeName;
  data: Float32Array | BigInt64Array;
}

const elementSizes: Partial<Record<DTypeName, number>> = { float32: 4, int64: 8 };

/** What the generated program contains, for tests and the CLI's summary. */
export interface ClipProgramSummary {
  /** The instruction sequence: operator names for KernelCalls, `delegate:NAME` for DelegateCalls. */
  instructions: string[];
  delegateCount: number;
  /** Size of memory arena 1 in bytes. */
  plannedBytes: number;
  /** Named data entries (unique delegate constants) and their total bytes. */
  namedDataCount: number;
  namedDataBytes: number;
}

/**
 * A method being lowered: planned tensors, constants and steps, turned into a
 * MethodBuilder only once lifetimes are known and memory is planned.
 */
class LoweredMethod {
  readonly tensors: PlannedTensor[] = [];
  readonly constants: ConstantTensor[] = [];
  readonly steps: Step[] = [];
  inputs: number[] = [];
  outputs: number[] = [];

  tensor(sizes: number[], dtype: DTypeName = 'float32'): number {
    this.tensors.push({ sizes: [...sizes], dtype });
    return this.tensors.length - 1;
  }

  constant(sizes: number[], data: Float32Array | BigInt64Array): number {
    const count = sizes.reduce((product, size) => product * size, 1);
    if (data.length !== count) throw new Error(`constant of sizes [${sizes.join(', ')}] needs ${count} values, got ${data.length}`);
    this.constants.push({ sizes: [...sizes], dtype: data instanceof BigInt64Array ? 'int64' : 'float32', data });
    return this.constants.length - 1;
  }

  kernel(operator: string, args: Argument[]): void {
    this.steps.push({ kind: 'kernel', operator, args });
  }

  /** Adds a DelegateCall; the graph's external inputs and outputs must match these tensors in order and shape. */
  delegate(name: string, graph: XnnGraphBuilder, inputs: number[], outputs: number[]): void {
    const externals = graph.values.map((value, id) => ({ value, id }));
    const graphInputs = externals.filter((item) => item.value.kind === 'input');
    const graphOutputs = externals.filter((item) => item.value.kind === 'output');
    const check = (label: string, tensorIds: number[], graphValues: typeof externals): void => {
      if (tensorIds.length !== graphValues.length) {
        throw new Error(`delegate ${name}: ${tensorIds.length} ${label} tensors for ${graphValues.length} external ${label}s`);
      }
      tensorIds.forEach((tensorId, index) => {
        const sizes = this.tensors[tensorId]!.sizes.join(',');
        const dims = graphValues[index]!.value.dims.join(',');
        if (sizes !== dims) throw new Error(`delegate ${name}: ${label} ${index} is [${sizes}] in the program but [${dims}] in the graph`);
      });
    };
    check('input', inputs, graphInputs);
    check('output', outputs, graphOutputs);
    this.steps.push({ kind: 'delegate', name, graph, inputs: [...inputs], outputs: [...outputs] });
  }

  /** Lifetimes [first, last] per planned tensor: method inputs start at 0 and outputs end after the last step. */
  lifetimes(): { first: number; last: number }[] {
    const spans = this.tensors.map(() => ({ first: Infinity, last: -Infinity }));
    const touch = (id: number, step: number): void => {
      const span = spans[id]!;
      span.first = Math.min(span.first, step);
      span.last = Math.max(span.last, step);
    };
    this.steps.forEach((step, index) => {
      if (step.kind === 'kernel') {
        for (const arg of step.args) if (arg.kind === 'tensor') touch(arg.id, index);
      } else {
        for (const id of [...step.inputs, ...step.outputs]) touch(id, index);
      }
    });
    for (const id of this.inputs) touch(id, 0);
    for (const id of this.outputs) touch(id, this.steps.length);
    spans.forEach((span, id) => {
      if (span.first === Infinity) throw new Error(`planned tensor ${id} is never used`);
    });
    return spans;
  }

  /** Plans memory and writes the method into `program`. */
  emit(program: ProgramBuilder, method: MethodBuilder): { plannedBytes: number; instructions: string[] } {
    const spans = this.lifetimes();
    const plan = planMemoryGreedy(
      this.tensors.map((tensor, id) => ({
        size: tensor.sizes.reduce((product, size) => product * size, 1) * elementSizes[tensor.dtype]!,
        first: spans[id]!.first,
        last: spans[id]!.last,
      })),
    );

    const tensorValues = this.tensors.map((tensor, id) =>
      method.tensor({ dtype: tensor.dtype, sizes: tensor.sizes, planned: { memoryId: 1, offset: plan.offsets[id]! } }),
    );
    const constantValues = this.constants.map((constant) => method.tensor({ dtype: constant.dtype, sizes: constant.sizes, constant: constant.data }));

    const instructions: string[] = [];
    for (const step of this.steps) {
      if (step.kind === 'kernel') {
        const args = step.args.map((arg): number => {
          switch (arg.kind) {
            case 'tensor':
              return tensorValues[arg.id]!;
            case 'constant':
              return constantValues[arg.id]!;
            case 'int':
              return method.int(arg.value);
            case 'double':
              return method.double(arg.value);
            case 'bool':
              return method.bool(arg.value);
            case 'ints':
              return method.ints(arg.value);
            case 'none':
              return method.none();
          }
        });
        method.kernel(step.operator, args);
        instructions.push(step.operator);
      } else {
        const { delegateIndex } = addXnnpackDelegate(program, method, step.graph);
        method.delegateCall(
          delegateIndex,
          [...step.inputs, ...step.outputs].map((id) => tensorValues[id]!),
        );
        instructions.push(`delegate:${step.name}`);
      }
    }
    method.setInputs(this.inputs.map((id) => tensorValues[id]!));
    method.setOutputs(this.outputs.map((id) => tensorValues[id]!));
    method.setBufferSizes([0, plan.total]);
    return { plannedBytes: plan.total, instructions };
  }
}

const tensorArg = (id: number): Argument => ({ kind: 'tensor', id });
const constantArg = (id: number): Argument => ({ kind: 'constant', id });

function weight(weights: ClipWeights, name: string): Float32Array {
  const data = weights.get(name);
  if (!data) throw new Error(`missing weight "${name}"`);
  return data;
}

/** Returns [D, C, p, p] conv weights permuted to XNNPACK's [D, p, p, C] filter layout. */
function toNhwcFilter(data: Float32Array, outChannels: number, inChannels: number, patch: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let o = 0; o < outChannels; o++) {
    for (let c = 0; c < inChannels; c++) {
      for (let y = 0; y < patch; y++) {
        for (let x = 0; x < patch; x++) {
          out[((o * patch + y) * patch + x) * inChannels + c] = data[((o * inChannels + c) * patch + y) * patch + x]!;
        }
      }
    }
  }
  return out;
}

/** Adds `aten::native_layer_norm.out` over the last dim; returns the normalized tensor. */
function layerNorm(method: LoweredMethod, input: number, weightData: Float32Array, biasData: Float32Array, eps: number): number {
  const sizes = method.tensors[input]!.sizes;
  const statsSizes = [...sizes.slice(0, -1), 1];
  const out = method.tensor(sizes);
  const mean = method.tensor(statsSizes);
  const rstd = method.tensor(statsSizes);
  const gamma = method.constant([sizes.at(-1)!], weightData);
  const beta = method.constant([sizes.at(-1)!], biasData);
  // Schema arguments, the three out arguments, then the three returned tensors.
  method.kernel('aten::native_layer_norm.out', [
    tensorArg(input),
    { kind: 'ints', value: [sizes.at(-1)!] },
    constantArg(gamma),
    constantArg(beta),
    { kind: 'double', value: eps },
    tensorArg(out),
    tensorArg(mean),
    tensorArg(rstd),
    tensorArg(out),
    tensorArg(mean),
    tensorArg(rstd),
  ]);
  return out;
}

/** Builds the "embeddings" delegate: normalization, patch convolution, class token and position embeddings. */
export function embeddingsGraph(config: ClipVisionConfig, weights: ClipWeights): XnnGraphBuilder {
  const { grid, patches, sequence } = clipGeometry(config);
  const d = config.hidden_size;
  const c = config.num_channels;
  const size = config.image_size;
  const p = config.patch_size;
  const graph = new XnnGraphBuilder();

  const pixels = graph.input([1, c, size, size]);
  const classToken = graph.input([1, 1, d]);
  const positions = graph.input([1, sequence, d]);
  const mean = graph.constant([1, c, 1, 1], channelConstant(CLIP_MEAN, c, 'mean'));
  const std = graph.constant([1, c, 1, 1], channelConstant(CLIP_STD, c, 'std'));
  const filter = graph.constant([d, p, p, c], toNhwcFilter(weight(weights, 'vision_model.embeddings.patch_embedding.weight'), d, c, p));
  const output = graph.output([1, sequence, d]);

  const centered = graph.binary('XNNSubtract', pixels, mean, graph.intermediate([1, c, size, size]));
  const normalized = graph.binary('XNNDiv', centered, std, graph.intermediate([1, c, size, size]));
  const nhwc = graph.transpose([0, 2, 3, 1], normalized, graph.intermediate([1, size, size, c]));
  const conv = graph.conv(
    'XNNConv2d',
    { kernelHeight: p, kernelWidth: p, subsamplingHeight: p, subsamplingWidth: p, groupInputChannels: c, groupOutputChannels: d, groups: 1 },
    nhwc,
    filter,
    XNN_INVALID_VALUE_ID,
    graph.intermediate([1, grid, grid, d]),
  );
  const nchw = graph.transpose([0, 3, 1, 2], conv, graph.intermediate([1, d, grid, grid]));
  const flat = graph.reshape([1, d, patches], nchw, graph.intermediate([1, d, patches]));
  const tokens = graph.transpose([0, 2, 1], flat, graph.intermediate([1, patches, d]));
  const joined = graph.concatenate(1, [classToken, tokens], graph.intermediate([1, sequence, d]));
  graph.binary('XNNAdd', joined, positions, output);
  return graph;
}

function channelConstant(values: number[], channels: number, label: string): Float32Array {
  if (channels !== values.length) throw new Error(`CLIP ${label} normalization has ${values.length} channels, but num_channels is ${channels}`);
  return Float32Array.from(values);
}

/** Builds one layer's "attention" delegate: q/k/v projections, scaled dot-product attention, out_proj and the residual add. */
export function attentionGraph(config: ClipVisionConfig, weights: ClipWeights, layer: number): XnnGraphBuilder {
  const { sequence: s, headDim } = clipGeometry(config);
  const d = config.hidden_size;
  const h = config.num_attention_heads;
  const prefix = `${LAYER_PREFIX}${layer}.self_attn.`;
  const graph = new XnnGraphBuilder();

  const normed = graph.input([1, s, d]);
  const residual = graph.input([1, s, d]);
  const output = graph.output([1, s, d]);

  const project = (name: string): number => {
    const filter = graph.constant([d, d], weight(weights, `${prefix}${name}.weight`));
    const bias = graph.constant([d], weight(weights, `${prefix}${name}.bias`));
    return graph.fullyConnected(normed, filter, bias, graph.intermediate([1, s, d]));
  };
  // view(1, S, -1, head_dim).transpose(1, 2): [1, H, S, Dh].
  const splitHeads = (projected: number): number => {
    const heads = graph.reshape([1, s, 0, headDim], projected, graph.intermediate([1, s, h, headDim]));
    return graph.transpose([0, 2, 1, 3], heads, graph.intermediate([1, h, s, headDim]));
  };
  const query = splitHeads(project('q_proj'));
  const key = splitHeads(project('k_proj'));
  const value = splitHeads(project('v_proj'));

  // matmul(query, key.transpose(2, 3)) decomposes to 3-D bmm between reshapes.
  const keyT = graph.transpose([0, 1, 3, 2], key, graph.intermediate([1, h, headDim, s]));
  const query3 = graph.reshape([h, s, headDim], query, graph.intermediate([h, s, headDim]));
  const keyT3 = graph.reshape([h, headDim, s], keyT, graph.intermediate([h, headDim, s]));
  const scores3 = graph.binary('XNNBatchMatrixMultiply', query3, keyT3, graph.intermediate([h, s, s]));
  const scores = graph.reshape([1, h, s, s], scores3, graph.intermediate([1, h, s, s]));
  const scale = graph.constant([], [headDim ** -0.5]);
  const scaled = graph.binary('XNNMultiply', scores, scale, graph.intermediate([1, h, s, s]));
  const probabilities = graph.unary('XNNSoftmax', scaled, graph.intermediate([1, h, s, s]));

  const probabilities3 = graph.reshape([h, s, s], probabilities, graph.intermediate([h, s, s]));
  const value3 = graph.reshape([h, s, headDim], value, graph.intermediate([h, s, headDim]));
  const context3 = graph.binary('XNNBatchMatrixMultiply', probabilities3, value3, graph.intermediate([h, s, headDim]));
  const context = graph.reshape([1, h, s, headDim], context3, graph.intermediate([1, h, s, headDim]));
  const merged = graph.transpose([0, 2, 1, 3], context, graph.intermediate([1, s, h, headDim]));
  const flat = graph.reshape([1, s, 0], merged, graph.intermediate([1, s, d]));

  const outFilter = graph.constant([d, d], weight(weights, `${prefix}out_proj.weight`));
  const outBias = graph.constant([d], weight(weights, `${prefix}out_proj.bias`));
  const attended = graph.fullyConnected(flat, outFilter, outBias, graph.intermediate([1, s, d]));
  graph.binary('XNNAdd', residual, attended, output);
  return graph;
}

/** Builds one layer's "mlp" delegate: fc1, the activation, fc2 and the residual add. */
export function mlpGraph(config: ClipVisionConfig, weights: ClipWeights, layer: number): XnnGraphBuilder {
  const { sequence: s } = clipGeometry(config);
  const d = config.hidden_size;
  const inner = config.intermediate_size;
  const prefix = `${LAYER_PREFIX}${layer}.mlp.`;
  const graph = new XnnGraphBuilder();

  const normed = graph.input([1, s, d]);
  const residual = graph.input([1, s, d]);
  const output = graph.output([1, s, d]);

  const fc1Filter = graph.constant([inner, d], weight(weights, `${prefix}fc1.weight`));
  const fc1Bias = graph.constant([inner], weight(weights, `${prefix}fc1.bias`));
  const hidden = graph.fullyConnected(normed, fc1Filter, fc1Bias, graph.intermediate([1, s, inner]));
  let activated: number;
  if (config.hidden_act === 'quick_gelu') {
    // transformers' QuickGELUActivation: x * sigmoid(1.702 * x).
    const factor = graph.constant([], [1.702]);
    const scaled = graph.binary('XNNMultiply', hidden, factor, graph.intermediate([1, s, inner]));
    const gate = graph.unary('XNNSigmoid', scaled, graph.intermediate([1, s, inner]));
    activated = graph.binary('XNNMultiply', hidden, gate, graph.intermediate([1, s, inner]));
  } else {
    activated = graph.unary('XNNGelu', hidden, graph.intermediate([1, s, inner]));
  }
  const fc2Filter = graph.constant([d, inner], weight(weights, `${prefix}fc2.weight`));
  const fc2Bias = graph.constant([d], weight(weights, `${prefix}fc2.bias`));
  const projected = graph.fullyConnected(activated, fc2Filter, fc2Bias, graph.intermediate([1, s, d]));
  graph.binary('XNNAdd', residual, projected, output);
  return graph;
}

/** Lowers the whole model into a method (see the file header for the op list). */
function lowerClip(config: ClipVisionConfig, weights: ClipWeights): LoweredMethod {
  const { sequence } = clipGeometry(config);
  const d = config.hidden_size;
  const projectionDim = config.projection_dim;
  const method = new LoweredMethod();

  const pixels = method.tensor([1, config.num_channels, config.image_size, config.image_size]);
  method.inputs = [pixels];

  // Class token: class_embedding.expand(1, 1, -1).
  const classEmbedding = method.constant([d], weight(weights, 'vision_model.embeddings.class_embedding'));
  const classToken = method.tensor([1, 1, d]);
  method.kernel('aten::expand_copy.out', [constantArg(classEmbedding), { kind: 'ints', value: [1, 1, -1] }, { kind: 'bool', value: false }, tensorArg(classToken), tensorArg(classToken)]);

  // Position embeddings: embedding(position_embedding.weight, position_ids).
  const positionTable = method.constant([sequence, d], weight(weights, 'vision_model.embeddings.position_embedding.weight'));
  const positionIds = method.constant([1, sequence], BigInt64Array.from({ length: sequence }, (_, index) => BigInt(index)));
  const positions = method.tensor([1, sequence, d]);
  method.kernel('aten::embedding.out', [
    constantArg(positionTable),
    constantArg(positionIds),
    { kind: 'int', value: -1 },
    { kind: 'bool', value: false },
    { kind: 'bool', value: false },
    tensorArg(positions),
    tensorArg(positions),
  ]);

  const embeddings = method.tensor([1, sequence, d]);
  method.delegate('embeddings', embeddingsGraph(config, weights), [pixels, classToken, positions], [embeddings]);
  let hidden = layerNorm(method, embeddings, weight(weights, 'vision_model.pre_layrnorm.weight'), weight(weights, 'vision_model.pre_layrnorm.bias'), config.layer_norm_eps);

  for (let layer = 0; layer < config.num_hidden_layers; layer++) {
    const prefix = `${LAYER_PREFIX}${layer}.`;
    const normed1 = layerNorm(method, hidden, weight(weights, `${prefix}layer_norm1.weight`), weight(weights, `${prefix}layer_norm1.bias`), config.layer_norm_eps);
    const attended = method.tensor([1, sequence, d]);
    method.delegate(`attention.${layer}`, attentionGraph(config, weights, layer), [normed1, hidden], [attended]);
    const normed2 = layerNorm(method, attended, weight(weights, `${prefix}layer_norm2.weight`), weight(weights, `${prefix}layer_norm2.bias`), config.layer_norm_eps);
    const next = method.tensor([1, sequence, d]);
    method.delegate(`mlp.${layer}`, mlpGraph(config, weights, layer), [normed2, attended], [next]);
    hidden = next;
  }

  // pooled_output = post_layernorm(last_hidden_state[:, 0, :]).
  const classState = method.tensor([1, d]);
  method.kernel('aten::select_copy.int_out', [tensorArg(hidden), { kind: 'int', value: 1 }, { kind: 'int', value: 0 }, tensorArg(classState), tensorArg(classState)]);
  const pooled = layerNorm(method, classState, weight(weights, 'vision_model.post_layernorm.weight'), weight(weights, 'vision_model.post_layernorm.bias'), config.layer_norm_eps);

  const projectionGraph = new XnnGraphBuilder();
  {
    const input = projectionGraph.input([1, d]);
    const filter = projectionGraph.constant([projectionDim, d], weight(weights, 'visual_projection.weight'));
    projectionGraph.fullyConnected(input, filter, XNN_INVALID_VALUE_ID, projectionGraph.output([1, projectionDim]));
  }
  const embedding = method.tensor([1, projectionDim]);
  method.delegate('projection', projectionGraph, [pooled], [embedding]);

  // F.normalize(embedding, dim=-1): x / norm(x).clamp_min(eps).expand_as(x).
  const norm = method.tensor([1, 1]);
  method.kernel('aten::linalg_vector_norm.out', [
    tensorArg(embedding),
    { kind: 'double', value: 2 },
    { kind: 'ints', value: [-1] },
    { kind: 'bool', value: true },
    { kind: 'none' },
    tensorArg(norm),
    tensorArg(norm),
  ]);
  const clampGraph = new XnnGraphBuilder();
  clampGraph.clamp(clampGraph.input([1, 1]), clampGraph.output([1, 1]), NORMALIZE_EPS, Infinity);
  const clamped = method.tensor([1, 1]);
  method.delegate('clamp', clampGraph, [norm], [clamped]);
  const denominator = method.tensor([1, projectionDim]);
  method.kernel('aten::expand_copy.out', [tensorArg(clamped), { kind: 'ints', value: [1, projectionDim] }, { kind: 'bool', value: false }, tensorArg(denominator), tensorArg(denominator)]);
  const divideGraph = new XnnGraphBuilder();
  divideGraph.binary('XNNDiv', divideGraph.input([1, projectionDim]), divideGraph.input([1, projectionDim]), divideGraph.output([1, projectionDim]));
  const result = method.tensor([1, projectionDim]);
  method.delegate('divide', divideGraph, [embedding, denominator], [result]);

  method.outputs = [result];
  return method;
}

/** Builds the CLIP vision encoder program; see the file header for its structure. */
export function buildClipProgram(config: ClipVisionConfig, weights: ClipWeights): { bytes: Uint8Array; summary: ClipProgramSummary } {
  const lowered = lowerClip(config, weights);
  const program = new ProgramBuilder();
  const method = program.method('forward');
  const { plannedBytes, instructions } = lowered.emit(program, method);
  const bytes = program.build();
  return {
    bytes,
    summary: {
      instructions,
      delegateCount: method.delegates.length,
      plannedBytes,
      namedDataCount: program.namedData.length,
      namedDataBytes: program.namedData.reduce((total, entry) => total + entry.data.length, 0),
    },
  };
}
