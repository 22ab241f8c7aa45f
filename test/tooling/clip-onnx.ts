/**
 * Builds an ONNX twin of the CLIP vision encoder program: the same weights and the same
 * computation (mean/std normalization, patch convolution, class token, position embedding,
 * pre-norm transformer layers with quick_gelu or gelu, CLS token, post layer norm,
 * projection, L2 normalization), with a symbolic batch dimension so onnxruntime can run
 * batches. Used by the benchmark to compare speed and outputs with onnxruntime-node.
 */
import { writeOnnxModel, type OnnxInitializer, type OnnxNode } from './onnx-writer.js';
import { CLIP_MEAN, CLIP_STD, LAYER_PREFIX, NORMALIZE_EPS, clipGeometry, type ClipVisionConfig, type ClipWeights } from './clip-weights.js';

/** Transposes a row-major [rows, cols] matrix (a linear layer's [out, in] weight to ONNX MatMul's [in, out]). */
function transpose(matrix: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(matrix.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = matrix[r * cols + c]!;
  }
  return out;
}

export function buildClipOnnx(config: ClipVisionConfig, weights: ClipWeights): Uint8Array {
  const d = config.hidden_size;
  const heads = config.num_attention_heads;
  const { sequence, headDim } = clipGeometry(config);
  const nodes: OnnxNode[] = [];
  const initializers: OnnxInitializer[] = [];
  let counter = 0;
  const fresh = (stem: string): string => `${stem}_${counter++}`;
  const weight = (name: string): Float32Array => {
    const data = weights.get(name);
    if (!data) throw new Error(`missing weight ${name}`);
    return data;
  };
  const constant = (name: string, dims: number[], data: Float32Array | BigInt64Array): string => {
    initializers.push({ name, dims, data });
    return name;
  };
  const op = (type: string, inputs: string[], attributes?: OnnxNode['attributes']): string => {
    const output = fresh(type.toLowerCase());
    nodes.push({ op: type, inputs, outputs: [output], attributes });
    return output;
  };
  const linear = (input: string, prefix: string, outFeatures: number, inFeatures: number, bias = true): string => {
    const w = constant(`${prefix}.weight_t`, [inFeatures, outFeatures], transpose(weight(`${prefix}.weight`), outFeatures, inFeatures));
    const product = op('MatMul', [input, w]);
    return bias ? op('Add', [product, constant(`${prefix}.bias`, [outFeatures], weight(`${prefix}.bias`))]) : product;
  };
  const layerNorm = (input: string, prefix: string): string =>
    op('LayerNormalization', [input, constant(`${prefix}.weight`, [d], weight(`${prefix}.weight`)), constant(`${prefix}.bias`, [d], weight(`${prefix}.bias`))], {
      axis: -1,
      epsilon: config.layer_norm_eps,
    });
  const int64s = (name: string, values: number[]): string => constant(name, [values.length], BigInt64Array.from(values.map(BigInt)));

  // Normalization: (x - mean) / std per channel.
  const mean = constant('clip_mean', [1, 3, 1, 1], Float32Array.from(CLIP_MEAN));
  const std = constant('clip_std', [1, 3, 1, 1], Float32Array.from(CLIP_STD));
  const normalized = op('Div', [op('Sub', ['pixel_values', mean]), std]);

  // Patch embedding and tokens.
  const patchWeight = constant('patch_embedding.weight', [d, config.num_channels, config.patch_size, config.patch_size], weight('vision_model.embeddings.patch_embedding.weight'));
  const patches = op('Conv', [normalized, patchWeight], {
    kernel_shape: [config.patch_size, config.patch_size],
    strides: [config.patch_size, config.patch_size],
  });
  const flat = op('Reshape', [patches, int64s('shape_patches', [0, d, -1])]);
  const tokens = op('Transpose', [flat], { perm: [0, 2, 1] });
  const batch = op('Slice', [op('Shape', ['pixel_values']), int64s('zero', [0]), int64s('one', [1])]);
  const classShape = op('Concat', [batch, int64s('class_tail', [1, d])], { axis: 0 });
  const classToken = op('Expand', [constant('class_embedding', [1, 1, d], weight('vision_model.embeddings.class_embedding')), classShape]);
  const embedded = op('Concat', [classToken, tokens], { axis: 1 });
  let hidden = op('Add', [embedded, constant('position_embedding', [sequence, d], weight('vision_model.embeddings.position_embedding.weight'))]);
  hidden = layerNorm(hidden, 'vision_model.pre_layrnorm');

  const splitHeads = int64s('shape_heads', [0, 0, heads, headDim]);
  const mergeHeads = int64s('shape_merge', [0, 0, d]);
  const scale = constant('attention_scale', [], Float32Array.of(headDim ** -0.5));
  const quickGeluFactor = constant('quick_gelu_factor', [], Float32Array.of(1.702));
  for (let layer = 0; layer < config.num_hidden_layers; layer++) {
    const prefix = `${LAYER_PREFIX}${layer}.`;
    const normed = layerNorm(hidden, `${prefix}layer_norm1`);
    const q = op('Transpose', [op('Reshape', [linear(normed, `${prefix}self_attn.q_proj`, d, d), splitHeads])], { perm: [0, 2, 1, 3] });
    const k = op('Transpose', [op('Reshape', [linear(normed, `${prefix}self_attn.k_proj`, d, d), splitHeads])], { perm: [0, 2, 3, 1] });
    const v = op('Transpose', [op('Reshape', [linear(normed, `${prefix}self_attn.v_proj`, d, d), splitHeads])], { perm: [0, 2, 1, 3] });
    const scores = op('Softmax', [op('Mul', [op('MatMul', [q, k]), scale])], { axis: -1 });
    const context = op('Reshape', [op('Transpose', [op('MatMul', [scores, v])], { perm: [0, 2, 1, 3] }), mergeHeads]);
    hidden = op('Add', [hidden, linear(context, `${prefix}self_attn.out_proj`, d, d)]);

    const normed2 = layerNorm(hidden, `${prefix}layer_norm2`);
    const up = linear(normed2, `${prefix}mlp.fc1`, config.intermediate_size, d);
    const activated =
      config.hidden_act === 'quick_gelu'
        ? op('Mul', [up, op('Sigmoid', [op('Mul', [up, quickGeluFactor])])])
        : op('Mul', [op('Mul', [up, constant(fresh('half'), [], Float32Array.of(0.5))]), op('Add', [op('Erf', [op('Mul', [up, constant(fresh('rsqrt2'), [], Float32Array.of(Math.SQRT1_2))])]), constant(fresh('one_f'), [], Float32Array.of(1))])]);
    hidden = op('Add', [hidden, linear(activated, `${prefix}mlp.fc2`, d, config.intermediate_size)]);
  }

  const cls = op('Gather', [hidden, constant('cls_index', [], BigInt64Array.of(0n))], { axis: 1 });
  const pooled = layerNorm(cls, 'vision_model.post_layernorm');
  const projected = linear(pooled, 'visual_projection', config.projection_dim, d, false);
  const norm = op('Max', [op('ReduceL2', [projected], { axes: [-1], keepdims: 1 }), constant('normalize_eps', [], Float32Array.of(NORMALIZE_EPS))]);
  const embedding = op('Div', [projected, norm]);
  nodes.push({ op: 'Identity', inputs: [embedding], outputs: ['image_embeds'] });

  return writeOnnxModel({
    name: 'clip_vision_twin',
    nodes,
    initializers,
    inputs: [{ name: 'pixel_values', shape: ['batch', config.num_channels, config.image_size, config.image_size] }],
    outputs: [{ name: 'image_embeds', shape: ['batch', config.projection_dim] }],
  });
}
