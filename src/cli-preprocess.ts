/**
 * `embed-image preprocess IMAGE --out X.npy`: writes the exact float32 [1, 3, H, W] tensor that
 * the embed command passes to the model for IMAGE, and optionally the resized uint8 image.
 * Preprocessing and the model run can then be checked apart.
 */
import { Command, InvalidArgumentError } from 'commander';

import { addModelOptions } from './cli-embed.js';
import type { CliOutput } from './cli.js';
import { ImageEmbeddings, preprocessImage } from './embeddings.js';
import { EmbedImageError } from './errors.js';
import { writeNpy } from './npy.js';
import type { PreprocessProfile } from './preprocess.js';
import { describeSource } from './sources.js';
import { commandOutput } from './cli-usage.js';

/** The input size of CLIP_VIT_BASE_PATCH32_IMAGE, used when neither --size nor --model is given. */
const DEFAULT_SIZE = { height: 224, width: 224 };

interface PreprocessCliOptions {
  out: string;
  u8?: string;
  model?: string;
  size?: { height: number; width: number };
  profile: PreprocessProfile;
}

const PREPROCESS_HELP = `
The input size is --size, else the input size of --model (read from the program, downloading
a known model once), else ${DEFAULT_SIZE.height}x${DEFAULT_SIZE.width}, the input of CLIP_VIT_BASE_PATCH32_IMAGE.
--out gets float32 [1, 3, H, W] with channel planes R, G, B, exactly the tensor that the
embed command passes to the model's forward method; --u8 gets the resized image as uint8
[H, W, 3] (RGB). Both are written to a temporary file and renamed into place.
stdout gets one JSON line, for example
  {"image":"photo.jpg","file":"x.npy","dtype":"float32","shape":[1,3,224,224],"profile":"rne-legacy","original":{"width":640,"height":480}}

Example (the two halves of "embed-image --model M photo.jpg"):
  embed-image preprocess photo.jpg --model M --out x.npy
  embed-image run M --input x.npy --output embedding.npy
`;

function parseSize(text: string): { height: number; width: number } {
  const match = /^(\d+)x(\d+)$/i.exec(text.trim());
  const height = Number(match?.[1]);
  const width = Number(match?.[2]);
  if (!match || !Number.isSafeInteger(height) || !Number.isSafeInteger(width) || height < 1 || width < 1 || height > 16384 || width > 16384) {
    throw new InvalidArgumentError('--size must be HEIGHTxWIDTH in pixels, each from 1 to 16384, such as 224x224.');
  }
  return { height, width };
}

async function inputSize(options: PreprocessCliOptions): Promise<{ height: number; width: number }> {
  if (options.size) return options.size;
  if (options.model === undefined) return DEFAULT_SIZE;
  const embeddings = new ImageEmbeddings();
  await embeddings.load({ modelSource: options.model, profile: options.profile });
  try {
    return embeddings.inputSize;
  } finally {
    embeddings.delete();
  }
}

/** Adds `preprocess` to `program`, which must be the root `embed-image` command. */
export function registerPreprocessCommand(program: Command, output: CliOutput, setStatus: (status: number) => void): Command {
  const command = program.command('preprocess');
  command
    .exitOverride()
    .helpOption('-h, --help', 'print this help and exit')
    .configureOutput(commandOutput(output, 'embed-image preprocess --help'))
    .description("write the exact float32 input tensor [1, 3, H, W] that the embed command gives the model for one image")
    .argument('<image>', 'an image file, file:, http(s) or data: URI');
  addModelOptions(command)
    .requiredOption('-o, --out <file>', 'the .npy file for the float32 [1, 3, H, W] tensor')
    .option('--u8 <file>', 'also write the resized image as uint8 [H, W, 3] to this .npy file (default: not written)')
    .option('--size <HxW>', `input size HEIGHTxWIDTH in pixels (default: the --model input size, else ${DEFAULT_SIZE.height}x${DEFAULT_SIZE.width})`, parseSize)
    .addHelpText('after', PREPROCESS_HELP)
    .action(async (image: string, options: PreprocessCliOptions, self: Command) => {
      // --model has a default for the embed command, but here only an explicit one sets the size.
      if (self.getOptionValueSource('model') === 'default') delete options.model;
      if (options.size && options.model !== undefined) {
        throw new EmbedImageError('ERR_INVALID_ARGUMENT', 'pass --size or --model, not both: the size comes from one of them');
      }
      const size = await inputSize(options);
      const result = await preprocessImage(image, { ...size, profile: options.profile });
      await writeNpy(options.out, { dtype: 'float32', shape: [1, 3, size.height, size.width], data: result.tensor });
      if (options.u8 !== undefined) await writeNpy(options.u8, { dtype: 'uint8', shape: [size.height, size.width, 3], data: result.resized });

      const line: Record<string, unknown> = { image: describeSource(image), file: options.out, dtype: 'float32', shape: [1, 3, size.height, size.width], profile: options.profile, original: result.original };
      if (options.u8 !== undefined) line.u8 = { file: options.u8, dtype: 'uint8', shape: [size.height, size.width, 3] };
      output.stdout(`${JSON.stringify(line)}\n`);
      setStatus(0);
    });
  return command;
}
