/**
 * Diagnosis of a pair of embeddings that differ: compares the model input tensors of both sides
 * (the preprocessed pixels) and names the most likely cause of the difference.
 *
 * Inputs are image tensors: float32 [1, C, H, W] or [C, H, W] (values k/255 as the CLIP
 * programs take them), or uint8 [H, W, C] pixels. Differences are measured in levels
 * (1/255 of the full range) when both tensors hold values in [0, 1] or bytes, and in tensor
 * units otherwise. The tests are tried in this order, and the first that fits is reported:
 *   equal        bit-identical inputs, so the model outputs differ
 *   shape        different sizes or channel counts
 *   scaling      float rounding differences only (below 0.01 level everywhere)
 *   orientation  one input equals the other rotated by 90, 180 or 270 degrees, or flipped
 *   channels     one input equals the other with its channels reordered (RGB vs BGR)
 *   shift        one input equals the other moved by 1 or 2 pixels (a different crop)
 *   colour       the difference depends on the pixel value per channel, not on its position
 *   resize       differences concentrated at edges, fine detail and the image border
 *   unknown      none of the above
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';

import { EmbedImageError } from './errors.js';
import { decodeNpy } from './npy.js';
import type { Tensor } from './program.js';

/** An image tensor as float64 values in planar [C, H, W] order. */
export interface ImagePlanes {
  channels: number;
  height: number;
  width: number;
  data: Float64Array;
  /** Whether the values are float32 (so last-bit differences are possible). */
  float32: boolean;
  /** Whether every value lies in [0, 1] (floats) or is a byte. */
  inUnitRange: boolean;
  /** Multiplier that turns a value into levels: 255 for values in [0, 1], 1 for bytes. */
  toLevels: number;
}

export type InputCause = 'equal' | 'shape' | 'scaling' | 'orientation' | 'channels' | 'shift' | 'colour' | 'resize' | 'unknown';

export interface InputDiagnosis {
  cause: InputCause;
  /** One line for the user, such as "inputs differ: 812 of 4096 pixels, max 3 levels; likely cause: resize ...". */
  message: string;
  /** Pixel positions where any channel differs. */
  differingPixels: number;
  totalPixels: number;
  /** Largest difference, in `unit`. */
  maxDifference: number;
  meanDifference: number;
  unit: 'levels' | 'units';
}

function inputError(source: string, problem: string): EmbedImageError {
  return new EmbedImageError('ERR_VECTORS_FORMAT', `${source}: ${problem}`);
}

/** Converts a tensor to planar float64 values, accepting [1, C, H, W], [C, H, W] float and [H, W, C] uint8. */
export function toPlanes(tensor: Tensor, source = 'input tensor'): ImagePlanes {
  const shape = tensor.shape;
  if (tensor.dtype === 'uint8') {
    const dims = shape.length === 4 && shape[0] === 1 ? shape.slice(1) : shape;
    if (dims.length !== 3) throw inputError(source, `uint8 pixels must have shape [H, W, C], got [${shape.join(', ')}]`);
    const [height, width, channels] = dims as [number, number, number];
    const data = new Float64Array(channels * height * width);
    for (let y = 0; y < height; y += 1) {
      for (let x = 0; x < width; x += 1) {
        for (let c = 0; c < channels; c += 1) data[c * height * width + y * width + x] = tensor.data[(y * width + x) * channels + c] as number;
      }
    }
    return { channels, height, width, data, float32: false, inUnitRange: true, toLevels: 1 };
  }
  if (tensor.dtype !== 'float32' && tensor.dtype !== 'float64') {
    throw inputError(source, `input tensors must be float32 [1, C, H, W] or uint8 [H, W, C], got ${tensor.dtype}`);
  }
  const dims = shape.length === 4 && shape[0] === 1 ? shape.slice(1) : shape;
  if (dims.length !== 3) throw inputError(source, `float input tensors must have shape [1, C, H, W] or [C, H, W], got [${shape.join(', ')}]`);
  const [channels, height, width] = dims as [number, number, number];
  const data = Float64Array.from(tensor.data as Float32Array | Float64Array);
  let inUnitRange = true;
  for (const value of data) {
    if (!(value >= 0 && value <= 1)) {
      inUnitRange = false;
      break;
    }
  }
  return { channels, height, width, data, float32: tensor.dtype === 'float32', inUnitRange, toLevels: inUnitRange ? 255 : 1 };
}

// ---------------------------------------------------------------------------------------------
// Geometry

type Transform = { name: string; apply: (planes: ImagePlanes) => ImagePlanes };

/** Builds planes of size (height, width) whose value at (c, y, x) is source(c, y, x). */
function remap(planes: ImagePlanes, height: number, width: number, sourceIndex: (y: number, x: number) => number): ImagePlanes {
  const data = new Float64Array(planes.channels * height * width);
  const plane = planes.height * planes.width;
  for (let c = 0; c < planes.channels; c += 1) {
    for (let y = 0; y < height; y += 1) {
      for (let x = 0; x < width; x += 1) data[c * height * width + y * width + x] = planes.data[c * plane + sourceIndex(y, x)]!;
    }
  }
  return { ...planes, height, width, data };
}

/**
 * Orientation changes. `apply` undoes the change named by `name`: when B is A rotated 90°
 * clockwise, apply(B) rotates B counter-clockwise and gives A back.
 */
const ORIENTATIONS: Transform[] = [
  { name: 'rotated 90° clockwise', apply: (p) => remap(p, p.width, p.height, (y, x) => x * p.width + (p.width - 1 - y)) },
  { name: 'rotated 180°', apply: (p) => remap(p, p.height, p.width, (y, x) => (p.height - 1 - y) * p.width + (p.width - 1 - x)) },
  { name: 'rotated 90° counter-clockwise', apply: (p) => remap(p, p.width, p.height, (y, x) => (p.height - 1 - x) * p.width + y) },
  { name: 'flipped left to right', apply: (p) => remap(p, p.height, p.width, (y, x) => y * p.width + (p.width - 1 - x)) },
  { name: 'flipped top to bottom', apply: (p) => remap(p, p.height, p.width, (y, x) => (p.height - 1 - y) * p.width + x) },
  { name: 'transposed', apply: (p) => remap(p, p.width, p.height, (y, x) => x * p.width + y) },
  { name: 'transposed across the other diagonal', apply: (p) => remap(p, p.width, p.height, (y, x) => (p.height - 1 - x) * p.width + (p.width - 1 - y)) },
];

function sameShape(a: ImagePlanes, b: ImagePlanes): boolean {
  return a.channels === b.channels && a.height === b.height && a.width === b.width;
}

/** Mean |a - b| in levels over the pixels where a window of both images overlaps. */
function meanAbsLevels(a: ImagePlanes, b: ImagePlanes, dy = 0, dx = 0): number {
  let sum = 0;
  let count = 0;
  const plane = a.height * a.width;
  for (let c = 0; c < a.channels; c += 1) {
    for (let y = Math.max(0, dy); y < Math.min(a.height, a.height + dy); y += 1) {
      for (let x = Math.max(0, dx); x < Math.min(a.width, a.width + dx); x += 1) {
        sum += Math.abs(a.data[c * plane + y * a.width + x]! * a.toLevels - b.data[c * plane + (y - dy) * b.width + (x - dx)]! * b.toLevels);
        count += 1;
      }
    }
  }
  return count === 0 ? Infinity : sum / count;
}

/**
 * Whether a candidate explains the difference: the residual must be under a quarter of the
 * original mean difference and under 2 levels (room for a resize after the rotation or crop).
 */
function explains(residual: number, original: number): boolean {
  return residual < 0.25 * original && residual < 2;
}

// ---------------------------------------------------------------------------------------------
// Colour

/** Bins per channel for the value-dependent difference; 32 bins of 8 levels keep about 100 pixels per bin at 64×64. */
const COLOUR_BINS = 32;

/**
 * Fits the difference b - a as a function of (channel, value of a) with a lookup table and
 * returns the fraction of the squared difference it explains, and the mean shift per channel.
 */
function colourFit(a: ImagePlanes, b: ImagePlanes): { explained: number; shifts: number[] } {
  const plane = a.height * a.width;
  const sums = new Float64Array(a.channels * COLOUR_BINS);
  const counts = new Float64Array(a.channels * COLOUR_BINS);
  const shifts: number[] = [];
  const binOf = (value: number): number => Math.min(COLOUR_BINS - 1, Math.max(0, Math.floor((value / 256) * COLOUR_BINS)));
  for (let c = 0; c < a.channels; c += 1) {
    let channelSum = 0;
    for (let i = 0; i < plane; i += 1) {
      const av = a.data[c * plane + i]! * a.toLevels;
      const difference = b.data[c * plane + i]! * b.toLevels - av;
      const bin = c * COLOUR_BINS + binOf(av);
      sums[bin] = sums[bin]! + difference;
      counts[bin] = counts[bin]! + 1;
      channelSum += difference;
    }
    shifts.push(channelSum / plane);
  }
  let total = 0;
  let residual = 0;
  for (let c = 0; c < a.channels; c += 1) {
    for (let i = 0; i < plane; i += 1) {
      const av = a.data[c * plane + i]! * a.toLevels;
      const difference = b.data[c * plane + i]! * b.toLevels - av;
      const bin = c * COLOUR_BINS + binOf(av);
      const predicted = sums[bin]! / counts[bin]!;
      total += difference * difference;
      residual += (difference - predicted) ** 2;
    }
  }
  return { explained: total === 0 ? 0 : 1 - residual / total, shifts };
}

// ---------------------------------------------------------------------------------------------
// Resize

/** Width in pixels of the image border where resize implementations differ most. */
const BORDER = 2;
/** Fraction of the most detailed pixels (by local gradient of input A) checked for concentration. */
const DETAIL_FRACTION = 0.2;
/** Mean difference in levels above which two inputs are taken to be different pictures, not two resizes of one. */
const MAX_RESIZE_MEAN_LEVELS = 10;

/**
 * Measures where the difference sits: the share of the total |b - a| in the most detailed 20%
 * of pixels, the correlation of |b - a| with the local gradient of a, and the share in the
 * 2-pixel border with the border's share of the area.
 */
function differenceLocation(a: ImagePlanes, b: ImagePlanes): { detailShare: number; detailCorrelation: number; borderShare: number; borderArea: number } {
  const { height, width } = a;
  const plane = height * width;
  const gradient = new Float64Array(plane);
  const difference = new Float64Array(plane);
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      const i = y * width + x;
      for (let c = 0; c < a.channels; c += 1) {
        const value = a.data[c * plane + i]!;
        const right = x + 1 < width ? a.data[c * plane + i + 1]! : value;
        const down = y + 1 < height ? a.data[c * plane + i + width]! : value;
        const left = x > 0 ? a.data[c * plane + i - 1]! : value;
        const up = y > 0 ? a.data[c * plane + i - width]! : value;
        const local = (Math.abs(right - value) + Math.abs(down - value) + Math.abs(left - value) + Math.abs(up - value)) * a.toLevels;
        gradient[i] = Math.max(gradient[i]!, local);
        difference[i] = difference[i]! + Math.abs(b.data[c * plane + i]! * b.toLevels - value * a.toLevels);
      }
    }
  }
  const total = difference.reduce((sum, value) => sum + value, 0);
  const order = [...gradient.keys()].sort((i, j) => gradient[j]! - gradient[i]! || i - j);
  let detail = 0;
  for (const i of order.slice(0, Math.max(1, Math.round(plane * DETAIL_FRACTION)))) detail += difference[i]!;
  let border = 0;
  let borderPixels = 0;
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      if (y < BORDER || x < BORDER || y >= height - BORDER || x >= width - BORDER) {
        border += difference[y * width + x]!;
        borderPixels += 1;
      }
    }
  }
  return {
    detailShare: total === 0 ? 0 : detail / total,
    detailCorrelation: correlation(gradient, difference),
    borderShare: total === 0 ? 0 : border / total,
    borderArea: borderPixels / plane,
  };
}

/** Pearson correlation of two equally long arrays; 0 when either is constant. */
function correlation(x: Float64Array, y: Float64Array): number {
  const meanX = x.reduce((sum, value) => sum + value, 0) / x.length;
  const meanY = y.reduce((sum, value) => sum + value, 0) / y.length;
  let covariance = 0;
  let varianceX = 0;
  let varianceY = 0;
  for (let i = 0; i < x.length; i += 1) {
    covariance += (x[i]! - meanX) * (y[i]! - meanY);
    varianceX += (x[i]! - meanX) ** 2;
    varianceY += (y[i]! - meanY) ** 2;
  }
  return varianceX === 0 || varianceY === 0 ? 0 : covariance / Math.sqrt(varianceX * varianceY);
}

// ---------------------------------------------------------------------------------------------
// Diagnosis

/** Distance between two float32 values in units in the last place. */
function ulpDistance(x: number, y: number): number {
  const buffer = new DataView(new ArrayBuffer(8));
  buffer.setFloat32(0, x);
  buffer.setFloat32(4, y);
  const toOrdered = (bits: number): number => (bits < 0 ? -(bits & 0x7fffffff) : bits);
  return Math.abs(toOrdered(buffer.getInt32(0)) - toOrdered(buffer.getInt32(4)));
}

function round(value: number, digits: number): string {
  const text = value.toFixed(digits);
  return text.includes('.') ? text.replace(/0+$/, '').replace(/\.$/, '') : text;
}

function signed(value: number): string {
  return `${value >= 0 ? '+' : ''}${round(value, 1)}`;
}

const CHANNEL_NAMES = ['R', 'G', 'B', 'A'];

/** Compares two model input tensors and names the most likely cause of their difference. */
export function diagnoseInputs(tensorA: Tensor, tensorB: Tensor, labels: { a: string; b: string } = { a: 'A', b: 'B' }): InputDiagnosis {
  const a = toPlanes(tensorA, labels.a);
  const b = toPlanes(tensorB, labels.b);
  const totalPixels = a.height * a.width;

  if (!sameShape(a, b)) {
    const rotated = a.channels === b.channels && a.height === b.width && a.width === b.height;
    const orientation = rotated ? ORIENTATIONS.filter((t) => t.apply(b).height === a.height).map((t) => ({ t, residual: meanAbsLevels(a, t.apply(b)) })) : [];
    const best = orientation.sort((x, y) => x.residual - y.residual)[0];
    if (best && best.residual < 2) {
      return {
        cause: 'orientation',
        message: `inputs differ in shape: ${labels.b} is ${labels.a} ${best.t.name} (${a.channels}×${a.height}×${a.width} vs ${b.channels}×${b.height}×${b.width}); likely cause: EXIF orientation applied on one side only`,
        differingPixels: totalPixels,
        totalPixels,
        maxDifference: Number.NaN,
        meanDifference: best.residual,
        unit: 'levels',
      };
    }
    return {
      cause: 'shape',
      message: `inputs differ in shape: ${labels.a} is ${a.channels}×${a.height}×${a.width}, ${labels.b} is ${b.channels}×${b.height}×${b.width}; likely cause: a different model input size or channel count (is it the same model?)`,
      differingPixels: totalPixels,
      totalPixels,
      maxDifference: Number.NaN,
      meanDifference: Number.NaN,
      unit: 'levels',
    };
  }

  // Levels only make sense when both sides hold pixels in [0, 1] or bytes.
  const levels = a.inUnitRange && b.inUnitRange;
  if (!levels) {
    a.toLevels = 1;
    b.toLevels = 1;
  }
  const unit = levels ? 'levels' : 'units';
  const plane = totalPixels;
  let differingPixels = 0;
  let maxDifference = 0;
  let sumDifference = 0;
  let maxUlp = 0;
  const mixed = a.float32 !== b.float32;
  for (let i = 0; i < plane; i += 1) {
    let differs = false;
    for (let c = 0; c < a.channels; c += 1) {
      const x = a.data[c * plane + i]!;
      const y = b.data[c * plane + i]!;
      const difference = Math.abs(x * a.toLevels - y * b.toLevels);
      // Bytes against k/255 floats: float32 rounding leaves about 3e-5 levels, which is no difference.
      if (mixed ? difference < 1e-3 : x === y) continue;
      differs = true;
      maxDifference = Math.max(maxDifference, difference);
      sumDifference += difference;
      if (a.float32 && b.float32) maxUlp = Math.max(maxUlp, ulpDistance(x, y));
    }
    if (differs) differingPixels += 1;
  }
  const meanDifference = sumDifference / (plane * a.channels);
  const base = { differingPixels, totalPixels, maxDifference, meanDifference, unit } as const;

  if (differingPixels === 0) {
    return { ...base, cause: 'equal', message: 'inputs equal: the model outputs differ (runtime, delegate or model numerics, not preprocessing)' };
  }
  const head = `inputs differ: ${differingPixels} of ${totalPixels} pixels, max ${round(maxDifference, maxDifference < 0.1 ? 6 : 1)} ${unit}, mean ${round(meanDifference, 3)}`;

  if (levels && maxDifference < 0.01) {
    const ulp = a.float32 && b.float32 ? ` (at most ${maxUlp} ulp)` : '';
    return {
      ...base,
      cause: 'scaling',
      message: `${head}; likely cause: scaling: last-bit float differences only${ulp}, as from x/255 vs x*(1/255) or float64 vs float32 arithmetic; the pixels are the same`,
    };
  }

  const original = meanAbsLevels(a, b);
  const geometry: { cause: InputCause; name: string; residual: number; why: string }[] = [];
  for (const transform of ORIENTATIONS) {
    const turned = transform.apply(b);
    if (!sameShape(a, turned)) continue;
    geometry.push({ cause: 'orientation', name: `${labels.b} matches ${labels.a} ${transform.name}`, residual: meanAbsLevels(a, turned), why: 'EXIF orientation applied on one side only' });
  }
  if (a.channels >= 3) {
    for (const order of [[2, 1, 0], [1, 0, 2], [0, 2, 1], [1, 2, 0], [2, 0, 1]]) {
      const data = new Float64Array(b.data.length);
      for (let c = 0; c < a.channels; c += 1) {
        const from = c < 3 ? order[c]! : c;
        data.set(b.data.subarray(from * plane, (from + 1) * plane), c * plane);
      }
      const name = order.map((index) => CHANNEL_NAMES[index]).join('');
      geometry.push({ cause: 'channels', name: `${labels.b} matches ${labels.a} with its channels in ${name} order`, residual: meanAbsLevels(a, { ...b, data }), why: 'BGR vs RGB channel order' });
    }
  }
  for (let dy = -2; dy <= 2; dy += 1) {
    for (let dx = -2; dx <= 2; dx += 1) {
      if (dy === 0 && dx === 0) continue;
      const moves = [dy !== 0 ? `${Math.abs(dy)} pixel${Math.abs(dy) === 1 ? '' : 's'} ${dy > 0 ? 'down' : 'up'}` : '', dx !== 0 ? `${Math.abs(dx)} pixel${Math.abs(dx) === 1 ? '' : 's'} ${dx > 0 ? 'right' : 'left'}` : ''].filter(Boolean);
      geometry.push({ cause: 'shift', name: `${labels.a} matches ${labels.b} moved ${moves.join(' and ')}`, residual: meanAbsLevels(a, b, dy, dx), why: 'a crop or resize origin that differs by whole pixels' });
    }
  }
  const bestGeometry = geometry.sort((x, y) => x.residual - y.residual)[0];
  if (bestGeometry && explains(bestGeometry.residual, original)) {
    return { ...base, cause: bestGeometry.cause, message: `${head}; likely cause: ${bestGeometry.cause}: ${bestGeometry.name} (mean residual ${round(bestGeometry.residual, 2)} levels), as from ${bestGeometry.why}` };
  }

  const colour = colourFit(a, b);
  if (colour.explained >= 0.8) {
    const shifts = colour.shifts.map((shift, c) => `${CHANNEL_NAMES[c] ?? `channel ${c}`} ${signed(shift)}`).join(', ');
    return {
      ...base,
      cause: 'colour',
      message: `${head}; likely cause: colour profile: consistent per-channel shifts (${shifts} ${unit} on average; ${Math.round(colour.explained * 100)}% of the difference depends only on the pixel value), as from a colour profile conversion (Display P3 or Adobe RGB vs sRGB), gamma or a different YUV to RGB matrix on one side`,
    };
  }

  // Resize filters differ where the image changes fast, and at the border where each filter
  // extends the image differently. Measured on photos downscaled to 64x64 by two filters (OpenCV
  // bilinear and sharp's Lanczos): 32 to 59% of the difference sat in the 20% most detailed
  // pixels, with a correlation of 0.3 to 0.6 and a mean of 1 to 8 levels.
  const location = differenceLocation(a, b);
  const atBorder = location.borderShare >= 3 * location.borderArea && location.borderShare >= 0.3;
  const atDetail = location.detailShare >= 1.5 * DETAIL_FRACTION && location.detailCorrelation >= 0.3;
  if ((atBorder || atDetail) && meanDifference <= MAX_RESIZE_MEAN_LEVELS * (levels ? 1 : 1 / 255)) {
    return {
      ...base,
      cause: 'resize',
      message: `${head}; likely cause: resize: differences concentrated at edges (${Math.round(location.detailShare * 100)}% of the difference in the ${DETAIL_FRACTION * 100}% most detailed pixels, correlation with the local gradient ${round(location.detailCorrelation, 2)}; ${Math.round(location.borderShare * 100)}% in the ${BORDER}-pixel border, which is ${Math.round(location.borderArea * 100)}% of the area), as from a different resize filter, antialiasing or sub-pixel crop`,
    };
  }

  return {
    ...base,
    cause: 'unknown',
    message: `${head}; no single cause recognised (not a rotation, flip, channel swap, shift, colour mapping or resize difference): check that both sides read the same image file`,
  };
}

// ---------------------------------------------------------------------------------------------
// Input files

/** Reads an input tensor: .npy, or JSON {"shape": [...], "dtype": "float32" | "uint8", "data": [...]}. */
export async function readInputTensor(file: string): Promise<Tensor> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new EmbedImageError('ERR_FILE_NOT_FOUND', `${file}: input tensor file not found`, { cause: error });
    throw new EmbedImageError('ERR_FILE_READ', `${file}: cannot read the file: ${(error as Error).message}`, { cause: error });
  }
  if (extname(file).toLowerCase() === '.npy') return decodeNpy(bytes, file);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw inputError(file, `input tensors must be .npy or JSON: ${(error as Error).message}`);
  }
  const object = value as { shape?: unknown; dtype?: unknown; data?: unknown };
  if (!Array.isArray(object.shape) || !object.shape.every((size) => Number.isSafeInteger(size) && size >= 0) || !Array.isArray(object.data)) {
    throw inputError(file, 'a JSON input tensor must be {"shape": [...], "dtype": "float32" or "uint8", "data": [numbers]}');
  }
  const shape = object.shape as number[];
  const count = shape.reduce((product, size) => product * size, 1);
  if (object.data.length !== count) throw inputError(file, `shape [${shape.join(', ')}] needs ${count} values but "data" has ${object.data.length}`);
  const dtype = object.dtype === 'uint8' ? 'uint8' : 'float32';
  if (object.dtype !== undefined && object.dtype !== 'uint8' && object.dtype !== 'float32') {
    throw inputError(file, `"dtype" must be "float32" or "uint8", got ${JSON.stringify(object.dtype)}`);
  }
  const data = dtype === 'uint8' ? Uint8Array.from(object.data as number[]) : Float32Array.from(object.data as number[]);
  return { dtype, shape, data };
}

/**
 * Finds the input tensor file of a record in `dir`: for a record path "x/cat.jpg" it tries
 * cat.jpg.npy, cat.npy, cat.jpg.json and cat.json; for a record without a path, "#3" tries
 * 3.npy and 3.json. Returns undefined when none exists.
 */
export async function findInputTensor(dir: string, record: { index: number; path?: string }): Promise<string | undefined> {
  const names: string[] = [];
  if (record.path !== undefined) {
    const name = basename(record.path.replace(/\\/g, '/'));
    const stem = name.slice(0, name.length - extname(name).length);
    names.push(`${name}.npy`, `${stem}.npy`, `${name}.json`, `${stem}.json`);
  }
  names.push(`${record.index}.npy`, `${record.index}.json`);
  for (const name of names) {
    const candidate = join(dir, name);
    const info = await stat(candidate).catch(() => undefined);
    if (info?.isFile()) return candidate;
  }
  return undefined;
}
