import { once } from 'node:events';
import { parentPort, workerData } from 'node:worker_threads';
import { simulateRackShare, type RackShare } from './simulated-rack.js';

// Worker-thread entry of the boot storm's load generator: one share of the rack. It says when it is
// ready and starts on the parent's word, so no share's nodes boot while another thread still loads.

const port = parentPort;
if (!port) throw new Error('rack-worker runs as a worker thread');
const result = await simulateRackShare(workerData as RackShare, async () => {
  port.postMessage({ ready: true });
  await once(port, 'message');
});
port.postMessage({ result });
