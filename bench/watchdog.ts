import { Worker } from 'node:worker_threads';

// A bench run that stops making progress ends instead of waiting forever, and leaves what is needed to
// tell why. The load generator's own timeouts (bench/load.ts) need this process' event loop; this
// watchdog does not: the main thread stamps a shared clock every second, and a worker thread, which
// runs while the main thread is stuck in a system call or a lock, reads it. When the stamp is older
// than the limit, the worker writes every thread's state (/proc/self/task: state, wchan, the system
// call it is in), the process' sockets and, with gdb on the machine, every thread's native stack to a file, kills the gate processes it started, says where
// on stderr, and aborts the process.

/** Longer than any synchronous stretch of the bench (filling the state-scale database is the longest). */
const DEFAULT_LIMIT_S = 180;

const WORKER = `
const { workerData } = require('node:worker_threads');
const { readdirSync, readFileSync, readlinkSync, writeFileSync, writeSync } = require('node:fs');
const clock = new Int32Array(workerData.clock);
const read = (f) => { try { return readFileSync(f, 'utf8').trim(); } catch (e) { return '(' + e.code + ')'; } };
setInterval(() => {
  const age = Math.floor(Date.now() / 1000) - Atomics.load(clock, 0);
  if (age < workerData.limitS) return;
  const lines = ['bench pid ' + process.pid + ': no progress on the main thread for ' + age + ' s', '', 'threads (tid, comm, state, wchan, syscall: number and arguments):'];
  for (const tid of readdirSync('/proc/self/task')) {
    const t = '/proc/self/task/' + tid;
    const state = read(t + '/stat').split(') ')[1]?.split(' ')[0];
    lines.push(tid + ' ' + read(t + '/comm') + ' ' + state + ' ' + read(t + '/wchan') + ' ' + read(t + '/syscall'));
  }
  lines.push('', 'file descriptors:');
  for (const fd of readdirSync('/proc/self/fd')) {
    try { lines.push(fd + ' ' + readlinkSync('/proc/self/fd/' + fd)); } catch {}
  }
  lines.push('', '/proc/net/tcp (rx_queue is the unread bytes; match inodes with the socket:[...] above):', read('/proc/net/tcp'), read('/proc/net/tcp6'));
  // every thread's native stack (which lock, in which library) when the machine has gdb. gdb stops
  // all of this process' threads, this one too: it writes to a file, never to a pipe read here
  const stacks = workerData.file + '.gdb';
  const gdb = require('node:child_process').spawnSync('sh', ['-c', 'exec timeout -s KILL 60 gdb -p "$0" -batch -ex "info threads" -ex "thread apply all bt 40" > "$1" 2>&1', String(process.pid), stacks], { stdio: 'ignore' });
  lines.push('', gdb.status === 0 ? 'gdb (native stacks):' : 'gdb exited with ' + gdb.status + ' (install gdb for native stacks):', read(stacks));
  // the gate processes this bench started would outlive it
  for (const pid of readdirSync('/proc').filter((e) => /^\\d+$/.test(e))) {
    if (read('/proc/' + pid + '/stat').split(') ')[1]?.split(' ')[1] === String(process.pid)) {
      lines.push('killed child ' + pid + ': ' + read('/proc/' + pid + '/cmdline').replace(/\\0/g, ' '));
      try { process.kill(Number(pid), 'SIGKILL'); } catch {}
    }
  }
  writeFileSync(workerData.file, lines.join('\\n') + '\\n');
  // stderr may be what the main thread is stuck on: the file first, then a line there, then the end
  try { writeSync(2, 'bench: no progress for ' + age + ' s; thread states in ' + workerData.file + '; aborting\\n'); } catch {}
  process.kill(process.pid, 'SIGABRT');
}, 5000);
`;

/** Starts the watchdog; stop() ends it (the bench finished). */
export function startWatchdog(file: string, limitS = DEFAULT_LIMIT_S): { stop(): void } {
  const clock = new SharedArrayBuffer(4);
  const stamp = new Int32Array(clock);
  const beat = () => Atomics.store(stamp, 0, Math.floor(Date.now() / 1000));
  beat();
  const heartbeat = setInterval(beat, 1000);
  heartbeat.unref();
  const worker = new Worker(WORKER, { eval: true, workerData: { clock, limitS, file } });
  worker.unref();
  return {
    stop() {
      clearInterval(heartbeat);
      void worker.terminate();
    },
  };
}
