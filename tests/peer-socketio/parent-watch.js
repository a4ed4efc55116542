'use strict';
// Started by the load harness with PIPELINE_EXIT_WITH_PARENT=1 (as it starts our services): stop, by the process's
// usual SIGTERM path, once the harness is gone. A process whose parent exits is re-parented, so its parent id
// changes; process.ppid is read anew on every access. Without it a SIGKILLed harness left the peer running.
module.exports = function watchParent() {
  if (process.env.PIPELINE_EXIT_WITH_PARENT !== '1') {
    return false;
  }
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) {
      process.kill(process.pid, 'SIGTERM');
    }
  }, 500).unref();
  return true;
};
