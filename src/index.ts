export { EmbedImageError, type ErrorCode } from './errors.js';
export {
  Program,
  supportedBackends,
  supportedOperators,
  checkTensor,
  isTensor,
  typedArrayConstructor,
  type DType,
  type LoadOptions,
  type MethodMeta,
  type ProgramInfo,
  type Tensor,
  type TensorData,
  type Value,
} from './program.js';
export { decodeNpy, encodeNpy, readNpy, writeNpy } from './npy.js';
