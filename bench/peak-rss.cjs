// Preloaded (node -r) into a process the benchmark measures: at exit, appends
// the process's peak resident memory (VmHWM, worker threads included) and its
// heap figures to the file named by PCA_BENCH_PEAK_FILE, one JSON line, with
// the programs it started as child processes (each start costs several ms).
'use strict';
const fs = require('node:fs');
const { ChildProcess } = require('node:child_process');
const file = process.env.PCA_BENCH_PEAK_FILE;
if (file) {
  const spawned = [];
  const spawn = ChildProcess.prototype.spawn;
  ChildProcess.prototype.spawn = function (options) {
    spawned.push(require('node:path').basename(String(options.file)));
    return spawn.call(this, options);
  };
  process.on('exit', () => {
    const status = fs.readFileSync('/proc/self/status', 'utf8');
    const kb = (field) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
    const m = process.memoryUsage();
    fs.appendFileSync(
      file,
      JSON.stringify({ peakMb: kb('VmHWM') / 1024, rssMb: kb('VmRSS') / 1024, heapUsedMb: m.heapUsed / 2 ** 20, heapTotalMb: m.heapTotal / 2 ** 20, spawned }) +
        '\n',
    );
  });
}
