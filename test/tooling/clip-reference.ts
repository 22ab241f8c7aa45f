/**
 * An independent float64 forward pass of the CLIP vision encoder with projection, written
 * from the definitions in Hugging Face transformers' `models/clip/modeling_clip.py`
 * (`CLIPVisionEmbeddings`, `CLIPAttention`, `CLIPMLP`, `CLIPEncoderLayer`,
 * `CLIPVisionTransformer`, `CLIPVisionModelWithProjection`), preceded by CLIP's mean/std
 * preprocessing and followed by L2 normalization (`torch.nn.functional.normalize`, eps 1e-12).
 *
 * It reads the weights in PyTorch's layouts (conv [D, C, p, p], linear [out, in]) and shares
 * no code with the program generator or the runtime, so tests can compare a program's float32
 * output with it.
 */
import { CLIP_MEAN, CLIP_STD, LAYER_PREFIX, NORMALIZE_EPS, clipGeometry, type ClipVisionConfig, type ClipWeights } from './clip-weights.js';

function param(weights: ClipWeights, name: string): Float32Array {
  const data = weights.get(name);
  if (!data) throw new Error(`reference: missing weight "${name}"`);
  return data;
}

/** y[t] = W x[t] + b for each of `rows` tokens; W is [out, in] row-major. */
function linear(input: Float64Array, rows: number, inFeatures: number, weight: Float32Array, bias: Float32Array | undefined, outFeatures: number): Float64Array {
  const out = new Float64Array(rows * outFeatures);
  for (let t = 0; t < rows; t++) {
    const x = t * inFeatures;
    for (let o = 0; o < outFeatures; o++) {
      let sum = bias ? bias[o]! : 0;
      const w = o * inFeatures;
      for (let i = 0; i < inFeatures; i++) sum += weight[w + i]! * input[x + i]!;
      out[t * outFeatures + o] = sum;
    }
  }
  return out;
}

/** nn.LayerNorm over the last dim: biased variance, eps inside the square root. */
function layerNorm(input: Float64Array, rows: number, width: number, weight: Float32Array, bias: Float32Array, eps: number): Float64Array {
  const out = new Float64Array(rows * width);
  for (let t = 0; t < rows; t++) {
    let mean = 0;
    for (let i = 0; i < width; i++) mean += input[t * width + i]!;
    mean /= width;
    let variance = 0;
    for (let i = 0; i < width; i++) variance += (input[t * width + i]! - mean) ** 2;
    variance /= width;
    const scale = 1 / Math.sqrt(variance + eps);
    for (let i = 0; i < width; i++) out[t * width + i] = (input[t * width + i]! - mean) * scale * weight[i]! + bias[i]!;
  }
  return out;
}

/** The error function, accurate to about 1e-12 (Maclaurin series below 4, asymptotic erfc above). */
export function erf(x: number): number {
  const sign = x < 0 ? -1 : 1;
  const a = Math.abs(x);
  if (a < 4) {
    let term = a;
    let sum = a;
    for (let n = 1; n < 200; n++) {
      term *= (-a * a) / n;
      const next = term / (2 * n + 1);
      sum += next;
      if (Math.abs(next) < 1e-17 * Math.abs(sum)) break;
    }
    return sign * (2 / Math.sqrt(Math.PI)) * sum;
  }
  const inverse = 1 / (2 * a * a);
  const series = 1 - inverse + 3 * inverse ** 2 - 15 * inverse ** 3 + 105 * inverse ** 4;
  return sign * (1 - (Math.exp(-a * a) / (a * Math.sqrt(Math.PI))) * series);
}

function activation(name: ClipVisionConfig['hidden_act'], x: number): number {
  // quick_gelu: x * sigmoid(1.702 x); gelu: the exact erf form.
  if (name === 'quick_gelu') return x / (1 + Math.exp(-1.702 * x));
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

/** Multi-head self-attention over `s` tokens of width `d` (CLIPAttention, no mask). */
function attention(input: Float64Array, config: ClipVisionConfig, weights: ClipWeights, prefix: string): Float64Array {
  const { sequence: s, headDim } = clipGeometry(config);
  const d = config.hidden_size;
  const heads = config.num_attention_heads;
  const q = linear(input, s, d, param(weights, `${prefix}q_proj.weight`), param(weights, `${prefix}q_proj.bias`), d);
  const k = linear(input, s, d, param(weights, `${prefix}k_proj.weight`), param(weights, `${prefix}k_proj.bias`), d);
  const v = linear(input, s, d, param(weights, `${prefix}v_proj.weight`), param(weights, `${prefix}v_proj.bias`), d);
  const scale = headDim ** -0.5;

  const context = new Float64Array(s * d);
  const scores = new Float64Array(s);
  for (let h = 0; h < heads; h++) {
    const base = h * headDim;
    for (let i = 0; i < s; i++) {
      let max = -Infinity;
      for (let j = 0; j < s; j++) {
        let dot = 0;
        for (let e = 0; e < headDim; e++) dot += q[i * d + base + e]! * k[j * d + base + e]!;
        scores[j] = dot * scale;
        max = Math.max(max, scores[j]!);
      }
      let total = 0;
      for (let j = 0; j < s; j++) {
        scores[j] = Math.exp(scores[j]! - max);
        total += scores[j]!;
      }
      for (let e = 0; e < headDim; e++) {
        let sum = 0;
        for (let j = 0; j < s; j++) sum += scores[j]! * v[j * d + base + e]!;
        context[i * d + base + e] = sum / total;
      }
    }
  }
  return linear(context, s, d, param(weights, `${prefix}out_proj.weight`), param(weights, `${prefix}out_proj.bias`), d);
}

/**
 * Returns CLIPVisionEmbeddings' output [S, D] (class token then patches in row-major grid
 * order, plus position embeddings) for one image of [C, H, W] values in [0, 1], after
 * CLIP's (x - mean) / std preprocessing.
 */
export function referenceEmbeddings(config: ClipVisionConfig, weights: ClipWeights, pixels: ArrayLike<number>): Float64Array {
  const { grid, sequence: s } = clipGeometry(config);
  const d = config.hidden_size;
  const c = config.num_channels;
  const size = config.image_size;
  const p = config.patch_size;
  if (pixels.length !== c * size * size) throw new Error(`reference: expected ${c * size * size} pixel values, got ${pixels.length}`);

  const image = new Float64Array(pixels.length);
  for (let channel = 0; channel < c; channel++) {
    for (let i = 0; i < size * size; i++) {
      const index = channel * size * size + i;
      image[index] = (pixels[index]! - CLIP_MEAN[channel]!) / CLIP_STD[channel]!;
    }
  }

  const patchWeight = param(weights, 'vision_model.embeddings.patch_embedding.weight');
  const classEmbedding = param(weights, 'vision_model.embeddings.class_embedding');
  const positions = param(weights, 'vision_model.embeddings.position_embedding.weight');
  const hidden = new Float64Array(s * d);
  for (let e = 0; e < d; e++) hidden[e] = classEmbedding[e]!;
  for (let gy = 0; gy < grid; gy++) {
    for (let gx = 0; gx < grid; gx++) {
      const token = 1 + gy * grid + gx;
      for (let o = 0; o < d; o++) {
        let sum = 0;
        for (let channel = 0; channel < c; channel++) {
          for (let ky = 0; ky < p; ky++) {
            const row = channel * size * size + (gy * p + ky) * size + gx * p;
            const w = ((o * c + channel) * p + ky) * p;
            for (let kx = 0; kx < p; kx++) sum += patchWeight[w + kx]! * image[row + kx]!;
          }
        }
        hidden[token * d + o] = sum;
      }
    }
  }
  for (let i = 0; i < s * d; i++) hidden[i] = hidden[i]! + positions[i]!;
  return hidden;
}

/** Returns one layer's CLIPAttention output [S, D] (through out_proj, before the residual add). */
export function referenceAttention(config: ClipVisionConfig, weights: ClipWeights, layer: number, normed: ArrayLike<number>): Float64Array {
  return attention(Float64Array.from(normed), config, weights, `${LAYER_PREFIX}${layer}.self_attn.`);
}

/** Returns one layer's CLIPMLP output [S, D] (fc1, activation, fc2; before the residual add). */
export function referenceMlp(config: ClipVisionConfig, weights: ClipWeights, layer: number, normed: ArrayLike<number>): Float64Array {
  const { sequence: s } = clipGeometry(config);
  const d = config.hidden_size;
  const prefix = `${LAYER_PREFIX}${layer}.mlp.`;
  const inner = linear(Float64Array.from(normed), s, d, param(weights, `${prefix}fc1.weight`), param(weights, `${prefix}fc1.bias`), config.intermediate_size);
  for (let i = 0; i < inner.length; i++) inner[i] = activation(config.hidden_act, inner[i]!);
  return linear(inner, s, config.intermediate_size, param(weights, `${prefix}fc2.weight`), param(weights, `${prefix}fc2.bias`), d);
}

/**
 * Returns the unit-length image embedding [projection_dim] for one image given as
 * [C, H, W] row-major values in [0, 1] (RGB pixels divided by 255).
 */
export function clipReferenceEmbedding(config: ClipVisionConfig, weights: ClipWeights, pixels: ArrayLike<number>): Float64Array {
  const { sequence: s } = clipGeometry(config);
  const d = config.hidden_size;
  const eps = config.layer_norm_eps;
  let hidden = layerNorm(referenceEmbeddings(config, weights, pixels), s, d, param(weights, 'vision_model.pre_layrnorm.weight'), param(weights, 'vision_model.pre_layrnorm.bias'), eps);

  // CLIPEncoderLayer: pre-norm attention and MLP blocks, each with a residual connection.
  for (let layer = 0; layer < config.num_hidden_layers; layer++) {
    const prefix = `${LAYER_PREFIX}${layer}.`;
    const normed1 = layerNorm(hidden, s, d, param(weights, `${prefix}layer_norm1.weight`), param(weights, `${prefix}layer_norm1.bias`), eps);
    const attended = referenceAttention(config, weights, layer, normed1);
    for (let i = 0; i < s * d; i++) hidden[i] = hidden[i]! + attended[i]!;

    const normed2 = layerNorm(hidden, s, d, param(weights, `${prefix}layer_norm2.weight`), param(weights, `${prefix}layer_norm2.bias`), eps);
    const mlp = referenceMlp(config, weights, layer, normed2);
    for (let i = 0; i < s * d; i++) hidden[i] = hidden[i]! + mlp[i]!;
  }

  // Pooled output: post_layernorm of the class token, then visual_projection (no bias).
  const pooled = layerNorm(hidden.subarray(0, d), 1, d, param(weights, 'vision_model.post_layernorm.weight'), param(weights, 'vision_model.post_layernorm.bias'), eps);
  const embedding = linear(pooled, 1, d, param(weights, 'visual_projection.weight'), undefined, config.projection_dim);

  let norm = 0;
  for (const value of embedding) norm += value * value;
  const denominator = Math.max(Math.sqrt(norm), NORMALIZE_EPS);
  return embedding.map((value) => value / denominator);
}
