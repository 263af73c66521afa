import { parentPort, workerData } from 'node:worker_threads';
import { simulateRackShare, type RackShare } from './simulated-rack.js';

// Worker-thread entry of the boot storm's load generator: one share of the rack, result posted back.

parentPort?.postMessage(await simulateRackShare(workerData as RackShare));
