#!/usr/bin/env -S node --single-threaded-gc
// --single-threaded-gc: every datagram and chunk lives in its own ArrayBuffer, so V8 runs a full GC
// per 64 MB moved; marking on the main thread alone costs far less CPU than waking helper threads
// for each (about 1 s per GB moved, see bench/README.md). `node bin/...` without it works, slower.
import { main } from "../dist/cli.js";
process.exitCode = await main(process.argv.slice(2));
