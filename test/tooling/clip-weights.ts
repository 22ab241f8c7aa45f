/**
 * The CLIP vision encoder's configuration and weights, shared by the program generator
 * (`clip-program.ts`) and the float64 reference (`clip-reference.ts`).
 *
 * The configuration uses the field names of Hugging Face transformers' `CLIPVisionConfig`
 * plus `projection_dim` from the top-level `CLIPConfig`. Weights use the parameter names of
 * `CLIPVisionModelWithProjection` (transformers `models/clip/modeling_clip.py`), including
 * its spelling `pre_layrnorm`.
 */
import { parseSafetensors } from './safetensors.js';

export interface ClipVisionConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  image_size: number;
  patch_size: number;
  num_channels: number;
  layer_norm_eps: number;
  /** "quick_gelu" (x·sigmoid(1.702x), what OpenAI's CLIP uses) or "gelu" (the exact erf form). */
  hidden_act: 'quick_gelu' | 'gelu';
  projection_dim: number;
}

/** CLIP's per-channel (RGB) image normalization, applied to pixels divided by 255. */
export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711];

/** Default `eps` of `torch.nn.functional.normalize`. */
export const NORMALIZE_EPS = 1e-12;

const integerFields = ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'image_size', 'patch_size', 'num_channels', 'projection_dim'] as const;

/**
 * Validates a parsed config JSON and returns the fields used here (others are ignored).
 * NOTE: absent `layer_norm_eps` and `hidden_act` default to 1e-5 and "quick_gelu", taken to
 * be CLIPVisionConfig's defaults without checking a transformers release.
 */
export function parseClipConfig(json: unknown, label = 'config'): ClipVisionConfig {
  if (typeof json !== 'object' || json === null) throw new Error(`${label}: expected a JSON object`);
  const source = json as Record<string, unknown>;
  const config: Partial<ClipVisionConfig> = {};
  for (const field of integerFields) {
    const value = source[field];
    if (!Number.isSafeInteger(value) || (value as number) < 1) {
      throw new Error(`${label}: "${field}" must be a positive integer, got ${JSON.stringify(value)}`);
    }
    config[field] = value as number;
  }
  const eps = source.layer_norm_eps ?? 1e-5;
  if (typeof eps !== 'number' || !(eps > 0)) throw new Error(`${label}: "layer_norm_eps" must be a positive number, got ${JSON.stringify(eps)}`);
  config.layer_norm_eps = eps;
  const act = source.hidden_act ?? 'quick_gelu';
  if (act !== 'quick_gelu' && act !== 'gelu') throw new Error(`${label}: "hidden_act" must be "quick_gelu" or "gelu", got ${JSON.stringify(act)}`);
  config.hidden_act = act;

  const full = config as ClipVisionConfig;
  if (full.hidden_size % full.num_attention_heads !== 0) {
    throw new Error(`${label}: hidden_size ${full.hidden_size} is not divisible by num_attention_heads ${full.num_attention_heads}`);
  }
  if (full.image_size % full.patch_size !== 0) {
    throw new Error(`${label}: image_size ${full.image_size} is not divisible by patch_size ${full.patch_size}`);
  }
  return full;
}

/** Patches per side, patches in all, and the sequence length with the class token. */
export function clipGeometry(config: ClipVisionConfig): { grid: number; patches: number; sequence: number; headDim: number } {
  const grid = config.image_size / config.patch_size;
  return { grid, patches: grid * grid, sequence: grid * grid + 1, headDim: config.hidden_size / config.num_attention_heads };
}

/** Parameter name → float32 data, row-major over the shape `clipParameterShapes` gives. */
export type ClipWeights = Map<string, Float32Array>;

export const LAYER_PREFIX = 'vision_model.encoder.layers.';

/** Returns every parameter of CLIPVisionModelWithProjection with its shape, in a fixed order. */
export function clipParameterShapes(config: ClipVisionConfig): Map<string, number[]> {
  const d = config.hidden_size;
  const { sequence } = clipGeometry(config);
  const shapes = new Map<string, number[]>();
  shapes.set('vision_model.embeddings.class_embedding', [d]);
  shapes.set('vision_model.embeddings.patch_embedding.weight', [d, config.num_channels, config.patch_size, config.patch_size]);
  shapes.set('vision_model.embeddings.position_embedding.weight', [sequence, d]);
  shapes.set('vision_model.pre_layrnorm.weight', [d]);
  shapes.set('vision_model.pre_layrnorm.bias', [d]);
  for (let layer = 0; layer < config.num_hidden_layers; layer++) {
    const prefix = `${LAYER_PREFIX}${layer}.`;
    for (const projection of ['k_proj', 'v_proj', 'q_proj', 'out_proj']) {
      shapes.set(`${prefix}self_attn.${projection}.weight`, [d, d]);
      shapes.set(`${prefix}self_attn.${projection}.bias`, [d]);
    }
    shapes.set(`${prefix}layer_norm1.weight`, [d]);
    shapes.set(`${prefix}layer_norm1.bias`, [d]);
    shapes.set(`${prefix}mlp.fc1.weight`, [config.intermediate_size, d]);
    shapes.set(`${prefix}mlp.fc1.bias`, [config.intermediate_size]);
    shapes.set(`${prefix}mlp.fc2.weight`, [d, config.intermediate_size]);
    shapes.set(`${prefix}mlp.fc2.bias`, [d]);
    shapes.set(`${prefix}layer_norm2.weight`, [d]);
    shapes.set(`${prefix}layer_norm2.bias`, [d]);
  }
  shapes.set('vision_model.post_layernorm.weight', [d]);
  shapes.set('vision_model.post_layernorm.bias', [d]);
  shapes.set('visual_projection.weight', [config.projection_dim, d]);
  return shapes;
}

/**
 * Tells whether a checkpoint name is one to skip: the `position_ids` buffer that some
 * checkpoints store, and the text tower of a full `CLIPModel` checkpoint.
 */
function isIgnorableName(name: string): boolean {
  return (
    name === 'vision_model.embeddings.position_ids' ||
    name.startsWith('text_model.') ||
    name === 'text_projection.weight' ||
    name === 'logit_scale' ||
    name === '__metadata__'
  );
}

/** Reads and validates CLIP vision weights from safetensors bytes (F32, F16 or BF16 are converted to float32). */
export function loadClipWeights(bytes: Uint8Array, config: ClipVisionConfig, label = 'weights'): ClipWeights {
  const shapes = clipParameterShapes(config);
  const tensors = parseSafetensors(bytes, label, (name) => !isIgnorableName(name));
  const weights: ClipWeights = new Map();
  const unexpected = [...tensors.keys()].filter((name) => !shapes.has(name));
  if (unexpected.length > 0) {
    throw new Error(`${label}: unexpected tensors ${unexpected.slice(0, 5).join(', ')}${unexpected.length > 5 ? ` and ${unexpected.length - 5} more` : ''}; expected the parameters of CLIPVisionModelWithProjection`);
  }
  const missing = [...shapes.keys()].filter((name) => !tensors.has(name));
  if (missing.length > 0) {
    throw new Error(`${label}: missing tensors ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''}; check that the config matches the checkpoint`);
  }
  for (const [name, shape] of shapes) {
    const tensor = tensors.get(name)!;
    if (tensor.shape.join(',') !== shape.join(',')) {
      throw new Error(`${label}: tensor "${name}" has shape [${tensor.shape.join(', ')}], but the config needs [${shape.join(', ')}]`);
    }
    weights.set(name, tensor.data);
  }
  return weights;
}

/**
 * A deterministic generator of uniform and normal numbers: xoshiro128** (Blackman and
 * Vigna, 2018) on four 32-bit words seeded by splitmix32, with Box-Muller for normals.
 * 32-bit arithmetic keeps it fast enough for the 88 million weights of ViT-B/32.
 */
export class SeededRandom {
  #state = new Uint32Array(4);
  #spare: number | undefined;

  constructor(seed: number) {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      // splitmix32: add the golden-ratio increment, then mix.
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      this.#state[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if (this.#state.every((word) => word === 0)) this.#state[0] = 1;
  }

  /** Returns the next 32 random bits as an unsigned integer. */
  nextUint32(): number {
    const s = this.#state;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    // Uint32Array stores wrap the XOR results to unsigned 32 bits.
    s[2] = s[2]! ^ s[0]!;
    s[3] = s[3]! ^ s[1]!;
    s[1] = s[1]! ^ s[2]!;
    s[0] = s[0]! ^ s[3]!;
    s[2] = s[2]! ^ t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** A uniform number in (0, 1]. */
  uniform(): number {
    return (this.nextUint32() + 1) / 4294967296;
  }

  /** A standard normal number (Box-Muller; the second value of each pair is kept for the next call). */
  normal(): number {
    if (this.#spare !== undefined) {
      const spare = this.#spare;
      this.#spare = undefined;
      return spare;
    }
    const radius = Math.sqrt(-2 * Math.log(this.uniform()));
    const angle = 2 * Math.PI * this.uniform();
    this.#spare = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  }
}

function rotl(value: number, bits: number): number {
  return ((value << bits) | (value >>> (32 - bits))) >>> 0;
}

/**
 * Random weights scaled like a trained ViT, drawn in the order of `clipParameterShapes`
 * from one SeededRandom stream:
 * - linear, embedding and patch weights N(0, 0.02²) (the `initializer_range` of CLIPVisionConfig);
 * - q_proj and k_proj weights N(0, 1/hidden_size), larger, so that attention is peaked
 *   rather than uniform and errors in the query/key path change the output;
 * - linear biases N(0, 0.01²); layer norm weights 1 + N(0, 0.02²), biases N(0, 0.01²).
 */
export function seededClipWeights(config: ClipVisionConfig, seed: number): ClipWeights {
  const random = new SeededRandom(seed);
  const weights: ClipWeights = new Map();
  for (const [name, shape] of clipParameterShapes(config)) {
    const data = new Float32Array(shape.reduce((product, size) => product * size, 1));
    let mean = 0;
    let std = 0.02;
    if (/layer_?norm\d?\.weight$|layrnorm\.weight$/.test(name)) mean = 1;
    else if (name.endsWith('.bias')) std = 0.01;
    else if (/self_attn\.[qk]_proj\.weight$/.test(name)) std = 1 / Math.sqrt(config.hidden_size);
    for (let i = 0; i < data.length; i++) data[i] = mean + std * random.normal();
    weights.set(name, data);
  }
  return weights;
}
