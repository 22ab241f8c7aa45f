#!/usr/bin/env node
import { main } from '../dist/cli.js';

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error(`embed-image: ${error?.stack ?? error}`);
    process.exitCode = 2;
  },
);
