/** A worker thread of the fallback's GEMM (gemm-threads.ts): serves ranges of products until the process ends. */
import { workerData, type MessagePort } from 'node:worker_threads';
import { serveRanges } from './gemm-threads.js';

const { control, job, port } = workerData as { control: Int32Array; job: Float64Array; port: MessagePort };
serveRanges(control, job, port);
